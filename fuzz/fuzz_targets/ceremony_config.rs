//! The key-ceremony config file (`key-ceremony --config`, TOML): loading and the full validation
//! never panic; every refusal is one line.
#![no_main]
use hsm_demo::ceremony::config::CeremonyConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = hsm_demo_fuzz::write_input("ceremony.toml", data);
    match CeremonyConfig::load(&path) {
        Ok(cfg) => {
            if let Err(errs) = cfg.validate(2, Some(&path)) {
                assert!(
                    !errs.is_empty(),
                    "validation failed without naming a problem"
                );
                let e = hsm_demo::ceremony::config::validation_error("config", &errs);
                hsm_demo_fuzz::check_error(&e);
            }
        }
        Err(e) => hsm_demo_fuzz::check_error(&e),
    }
});
