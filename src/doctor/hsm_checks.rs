//! The HSM half of `doctor`: module, token, login, key objects.

use std::io::IsTerminal;
use std::sync::Arc;

use cryptoki::object::{Attribute, ObjectClass};

use super::{Check, DoctorOptions};
use crate::error::Error;
use crate::hsm::module::{resolve_module_path, Module};
use crate::hsm::retry::retry_idempotent;
use crate::hsm::select::select_token;
use crate::hsm::session::HsmSession;

/// Module, token, login and key-object checks, in that order.
pub fn run(opts: &DoctorOptions) -> Vec<Check> {
    let explicit = opts.connect.module.as_deref();
    let path = match resolve_module_path(explicit) {
        Ok(p) => p,
        Err(e) => {
            let why = format!("{} (nothing configured)", e.one_line());
            return skip_all(&why);
        }
    };
    let module = match Module::load_path(&path) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            let mut v = vec![Check::fail(
                "module",
                e.one_line(),
                "point --module (or HSM_DEMO_MODULE) at the vendor's PKCS#11 library",
            )];
            v.extend(skip_rest(&["token", "login", "keys"], "module"));
            return v;
        }
    };
    let mut checks = vec![module_check(&module)];
    checks.extend(token_and_login(opts, module));
    checks
}

fn skip_all(why: &str) -> Vec<Check> {
    ["module", "token", "login", "keys"]
        .into_iter()
        .map(|n| Check::skip(n, why.to_string()))
        .collect()
}

fn skip_rest(names: &[&'static str], failed: &str) -> Vec<Check> {
    names
        .iter()
        .map(|n| Check::skip(n, format!("needs the {failed} check to pass")))
        .collect()
}

fn module_check(module: &Module) -> Check {
    match module.info() {
        Ok(i) => Check::pass(
            "module",
            format!(
                "{}: {} ({}), library {}, Cryptoki {}",
                i.path, i.description, i.manufacturer, i.library_version, i.cryptoki_version
            ),
        ),
        Err(e) => Check::fail(
            "module",
            e.one_line(),
            "the library loaded but C_GetInfo failed: check the vendor's configuration",
        ),
    }
}

fn token_and_login(opts: &DoctorOptions, module: Arc<Module>) -> Vec<Check> {
    let want = opts.connect.token.as_deref();
    let (slot, summary) = match select_token(&module, want) {
        Ok(t) => t,
        Err(e) => {
            let mut v = vec![Check::fail(
                "token",
                e.one_line(),
                "pass --token LABEL|SERIAL (list-slots shows them), or initialise a token",
            )];
            v.extend(skip_rest(&["login", "keys"], "token"));
            return v;
        }
    };
    let memory = module
        .ctx()
        .get_token_info(slot)
        .ok()
        .map(|i| memory_text(i.free_private_memory(), i.total_private_memory()))
        .unwrap_or_default();
    let mut v = vec![Check::pass(
        "token",
        format!("'{}', serial {}{memory}", summary.label, summary.serial),
    )];
    let mut session = match HsmSession::open_on(module, Some(&summary.serial)) {
        Ok(s) => s,
        Err(e) => {
            v.push(Check::fail(
                "login",
                e.one_line(),
                "C_OpenSession failed: check the token",
            ));
            v.extend(skip_rest(&["keys"], "login"));
            return v;
        }
    };
    let login = login_check(opts, &mut session);
    v.push(login);
    v.push(keys_check(opts, &session));
    v
}

fn memory_text(free: Option<usize>, total: Option<usize>) -> String {
    match (free, total) {
        (Some(f), Some(t)) => format!(", private memory {f} of {t} bytes free"),
        _ => String::new(),
    }
}

fn login_check(opts: &DoctorOptions, s: &mut HsmSession) -> Check {
    let src = &opts.connect.pin;
    let source = if src.pin_file.is_some() {
        "--pin-file"
    } else if std::env::var_os(crate::hsm::pin::PIN_ENV).is_some() {
        crate::hsm::pin::PIN_ENV
    } else if std::io::stdin().is_terminal() {
        "the terminal prompt"
    } else {
        return Check::skip(
            "login",
            "no PIN source configured (--pin-file or HSM_DEMO_PIN; a prompt needs a terminal)",
        );
    };
    match s.login(src) {
        Ok(()) => Check::pass(
            "login",
            format!("user logged in with the PIN from {source}"),
        ),
        Err(e) => Check::fail("login", e.one_line(), login_fix(&e)),
    }
}

fn login_fix(e: &Error) -> &'static str {
    match e {
        Error::PinIncorrect { .. } => {
            "correct the PIN in HSM_DEMO_PIN or --pin-file (each wrong try counts towards a lock)"
        }
        Error::PinLocked { .. } => "the security officer must reset the user PIN (C_InitPIN)",
        Error::PinNotInitialised { .. } => {
            "set the user PIN (softhsm2-util --init-token / pkcs11-tool --init-pin)"
        }
        _ => "check the PIN source (--pin-file must be a readable file of at most 1 KiB)",
    }
}

/// Key objects on the token: private keys are counted only after a login (they are private
/// objects), so without one the count is public keys only and says so.
fn keys_check(opts: &DoctorOptions, s: &HsmSession) -> Check {
    let count = |class| {
        retry_idempotent(|| s.session().find_objects(&[Attribute::Class(class)])).map(|v| v.len())
    };
    let (private, public) = match (
        count(ObjectClass::PRIVATE_KEY),
        count(ObjectClass::PUBLIC_KEY),
    ) {
        (Ok(a), Ok(b)) => (a as u64, b as u64),
        (Err(e), _) | (_, Err(e)) => {
            return Check::fail(
                "keys",
                e.one_line(),
                "C_FindObjects failed: check the token",
            )
        }
    };
    let seen = if s.is_logged_in() {
        format!(
            "{} key objects ({private} private, {public} public)",
            private + public
        )
    } else {
        format!("{public} public key objects (private keys are counted after a login)")
    };
    keys_against_capacity(private + public, opts.hsm_key_capacity, seen)
}

/// Compares the key-object count with the HSM's capacity: over it fails, from 90 % on warns.
pub fn keys_against_capacity(objects: u64, capacity: Option<u64>, seen: String) -> Check {
    let Some(cap) = capacity else {
        return Check::pass("keys", format!("{seen}; no --hsm-key-capacity given"));
    };
    let room = cap.saturating_sub(objects) / 2;
    let text = format!("{seen} of a capacity of {cap}: room for {room} more device key pairs");
    if objects > cap {
        Check::fail(
            "keys",
            text,
            "the HSM is over its key capacity: decommission devices, prune old keys, or provision from device CSRs",
        )
    } else if objects * 10 >= cap * 9 {
        Check::warn(
            "keys",
            text,
            "90 % of the key capacity is used: plan device CSRs or another HSM cluster",
        )
    } else {
        Check::pass("keys", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn capacity_thresholds() {
        let c = |n, cap| keys_against_capacity(n, cap, String::new()).status;
        assert_eq!(c(10, None), Status::Pass);
        assert_eq!(c(10, Some(100)), Status::Pass);
        assert_eq!(c(89, Some(100)), Status::Pass);
        assert_eq!(c(90, Some(100)), Status::Warn);
        assert_eq!(c(100, Some(100)), Status::Warn);
        assert_eq!(c(101, Some(100)), Status::Fail);
        let t = keys_against_capacity(3000, Some(3300), "3000 key objects".into());
        assert!(
            t.detail.contains("room for 150 more device key pairs"),
            "{}",
            t.detail
        );
    }
}
