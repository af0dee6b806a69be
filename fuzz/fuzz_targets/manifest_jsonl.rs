//! Batch manifests as JSON lines (`provision --manifest`): the whole validation pass
//! never panics, and every entry the reader yields holds a valid device id.
#![no_main]
use hsm_demo::pca::ids::DeviceId;
use hsm_demo::pca::manifest::{validate, ManifestReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = hsm_demo_fuzz::write_input("manifest.jsonl", data);
    match validate(&path) {
        Ok(info) => assert!(info.devices > 0, "a valid manifest has devices"),
        Err(e) => hsm_demo_fuzz::check_error(&e),
    }
    // The reader the run uses, entry by entry (validate stops at duplicates; this does not).
    let mut r = ManifestReader::open(&path).expect("the manifest file was just written");
    loop {
        match r.next_entry() {
            Ok(Some(e)) => {
                assert_eq!(
                    DeviceId::parse(e.device.as_str()).ok(),
                    Some(e.device.clone())
                );
                assert!(
                    e.csr.validate().is_ok(),
                    "entry on line {} has an invalid CSR request",
                    e.line
                );
            }
            Ok(None) => break,
            Err(e) => {
                hsm_demo_fuzz::check_error(&e);
                break;
            }
        }
    }
});
