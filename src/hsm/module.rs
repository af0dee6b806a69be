//! Loading a PKCS#11 module: dlopen, `C_Initialize` once per process, `C_Finalize` on drop.

use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};

use crate::error::{Error, Result};
use crate::hsm::module_diag::diagnose_init_failure;

/// Default SoftHSM2 module paths, tried in order when neither `--module` nor `HSM_DEMO_MODULE` is set.
pub const DEFAULT_MODULE_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
];

/// Resolves the module path: the explicit one if given, else the first default SoftHSM2 path that exists.
pub fn resolve_module_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    DEFAULT_MODULE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| Error::NoModule {
            tried: DEFAULT_MODULE_PATHS.join(", "),
        })
}

/// An initialised PKCS#11 module. `C_Finalize` runs when it is dropped; own it for as long as any
/// session on it is in use (an [`crate::hsm::session::HsmSession`] owns its module, so this holds).
#[derive(Debug)]
pub struct Module {
    ctx: Pkcs11,
    path: PathBuf,
    /// Whether this value called `C_Initialize` (and so must call `C_Finalize`).
    owns_init: bool,
}

impl Module {
    /// Loads and initialises the module at `explicit`, or at the first default SoftHSM2 path.
    pub fn load(explicit: Option<&Path>) -> Result<Module> {
        let path = resolve_module_path(explicit)?;
        Self::load_path(&path)
    }

    /// Loads and initialises the module at `path` (`C_GetFunctionList` + `C_Initialize`).
    pub fn load_path(path: &Path) -> Result<Module> {
        if !path.exists() {
            return Err(Error::ModuleLoad {
                path: path.to_path_buf(),
                reason: "no such file".into(),
            });
        }
        tracing::debug!(module = %path.display(), "loading PKCS#11 module");
        let ctx = Pkcs11::new(path).map_err(|e| match e {
            CkError::LibraryLoading(le) => Error::ModuleLoad {
                path: path.to_path_buf(),
                reason: le.to_string(),
            },
            CkError::MissingSymbol(_) => Error::NotPkcs11Module {
                path: path.to_path_buf(),
            },
            other => Error::from(other),
        })?;
        let owns_init = match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) => true,
            // Initialised elsewhere in this process: usable, but not ours to finalize.
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => false,
            // Modules return a bare code here: name the cause from their configuration if we can.
            Err(e) => {
                return Err(match (Error::from(e), diagnose_init_failure(path)) {
                    (Error::Pkcs11 { function, rv, .. }, Some(hint)) => {
                        Error::Pkcs11 { function, rv, hint }
                    }
                    (other, _) => other,
                })
            }
        };
        Ok(Module {
            ctx,
            path: path.to_path_buf(),
            owns_init,
        })
    }

    /// The cryptoki context.
    pub fn ctx(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// The path the module was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `(manufacturer, description, library version, cryptoki version)` from `C_GetInfo`.
    pub fn info(&self) -> Result<ModuleInfo> {
        let i = self.ctx().get_library_info()?;
        Ok(ModuleInfo {
            path: self.path.display().to_string(),
            manufacturer: i.manufacturer_id().trim().to_string(),
            description: i.library_description().trim().to_string(),
            library_version: format!(
                "{}.{}",
                i.library_version().major(),
                i.library_version().minor()
            ),
            cryptoki_version: format!(
                "{}.{}",
                i.cryptoki_version().major(),
                i.cryptoki_version().minor()
            ),
        })
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        if self.owns_init {
            if let Err(e) = self.ctx.clone().finalize() {
                tracing::debug!("C_Finalize: {e}");
            }
        }
    }
}

/// What `C_GetInfo` says about the module.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModuleInfo {
    /// Path it was loaded from.
    pub path: String,
    /// Manufacturer id.
    pub manufacturer: String,
    /// Library description.
    pub description: String,
    /// Library version `major.minor`.
    pub library_version: String,
    /// Cryptoki version `major.minor`.
    pub cryptoki_version: String,
}
