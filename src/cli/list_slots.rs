//! `hsm-demo list-slots [--objects] [--json]`

use std::fmt::Write as _;

use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::hsm::module::Module;
use crate::hsm::select::select_token;
use crate::hsm::slots::{list_objects, list_slots, SlotsReport};

const AFTER_HELP: &str = "\
Examples:
  hsm-demo list-slots
  hsm-demo list-slots --json
  HSM_DEMO_PIN=123456 hsm-demo list-slots --objects            # keys on the selected token
  hsm-demo --module /usr/lib/softhsm/libsofthsm2.so list-slots

Slot ids are shown for information only: SoftHSM renumbers slots after --init-token, so
hsm-demo selects tokens by label or serial (--token), never by slot id.";

/// `list-slots` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Also list the key and certificate objects on the selected token (logs in: needs the PIN)
    #[arg(long)]
    pub objects: bool,
}

fn yn(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn render(r: &SlotsReport) -> String {
    let mut s = String::new();
    let m = &r.module;
    let _ = writeln!(
        s,
        "Module: {} ({} {}, library {}, Cryptoki {})",
        m.path, m.manufacturer, m.description, m.library_version, m.cryptoki_version
    );
    for slot in &r.slots {
        let _ = writeln!(
            s,
            "Slot {} (slot id {:#x}): {}",
            slot.index, slot.slot_id, slot.description
        );
        match &slot.token {
            None => {
                let _ = writeln!(s, "  no token present");
            }
            Some(t) if !t.initialized => {
                let _ = writeln!(s, "  token: not initialized");
                let _ = writeln!(s, "  initialized:     no");
            }
            Some(t) => {
                let _ = writeln!(s, "  label:           {}", t.label);
                let _ = writeln!(s, "  manufacturer:    {}", t.manufacturer);
                let _ = writeln!(s, "  model:           {}", t.model);
                let _ = writeln!(s, "  serial:          {}", t.serial);
                let _ = writeln!(s, "  initialized:     {}", yn(t.initialized));
                let _ = writeln!(s, "  login required:  {}", yn(t.login_required));
                let _ = writeln!(s, "  user PIN set:    {}", yn(t.user_pin_initialized));
                if t.user_pin_locked {
                    let _ = writeln!(s, "  user PIN:        LOCKED");
                } else if t.user_pin_final_try {
                    let _ = writeln!(
                        s,
                        "  user PIN:        final try (one more wrong PIN locks it)"
                    );
                } else if t.user_pin_count_low {
                    let _ = writeln!(s, "  user PIN:        wrong PIN entered since last login");
                }
            }
        }
        if let Some(note) = &slot.objects_note {
            let _ = writeln!(s, "  objects: {note}");
        }
        if let Some(objs) = &slot.objects {
            if objs.is_empty() {
                let _ = writeln!(s, "  objects:         none");
            } else {
                let _ = writeln!(s, "  objects:");
            }
            for o in objs {
                let kind = match (&o.key_type, &o.curve) {
                    (Some(k), Some(c)) => format!(" {k} {c}"),
                    (Some(k), None) => format!(" {k}"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    s,
                    "    {:<12}{kind}  label={:?} id={}  {}",
                    o.class, o.label, o.id, o.uri
                );
            }
        }
    }
    s
}

/// Runs `list-slots`.
pub fn run(args: Args, g: &Global) -> Result<()> {
    let module = Module::load(g.module.as_deref())?;
    let mut report = list_slots(&module)?;
    if args.objects {
        let (slot, token) = select_token(&module, g.token.as_deref())?;
        let pin_src = g.connect_options().pin;
        if token.user_pin_locked {
            return Err(Error::PinLocked { token: token.label });
        }
        if !token.user_pin_initialized {
            return Err(Error::PinNotInitialised { token: token.label });
        }
        let pin = pin_src.get(&token.label)?;
        // Read-write: AWS CloudHSM (Client SDK 5) has no read-only sessions.
        let session = module.ctx().open_rw_session(slot)?;
        match session.login(cryptoki::session::UserType::User, Some(&pin)) {
            Ok(()) => {}
            Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::PinIncorrect, _)) => {
                return Err(Error::PinIncorrect { token: token.label })
            }
            Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::PinLocked, _)) => {
                return Err(Error::PinLocked { token: token.label })
            }
            Err(e) => return Err(e.into()),
        }
        let objects = list_objects(&session, &token.label)?;
        for s in report.slots.iter_mut() {
            if s.slot_id == slot.id() {
                s.objects = Some(objects.clone());
            } else if s.token.as_ref().is_some_and(|t| t.initialized) {
                s.objects_note = Some("not listed (select this token with --token)".into());
            }
        }
    }
    if g.json {
        let v = serde_json::to_value(&report).map_err(|e| Error::Other(format!("JSON: {e}")))?;
        print_json(&v)
    } else {
        print_bytes(render(&report).as_bytes())
    }
}
