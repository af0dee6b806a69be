//! Batch provisioning under SIGKILL at random moments (≥ 20 trials over a 200-device manifest):
//! after a final rerun, every device has exactly one certificate, every serial is recorded, no
//! intent dangles and the stand-in issued exactly one certificate per device. The same with the
//! stand-in's faults on is tests/batch_faults.rs (a file of its own: test binaries run one after
//! the other, so the two 200-device runs don't compete for this machine's two cores).

mod batch_support;
mod common;
mod pca_support;

use batch_support::kill_trials_then_rerun;
use pca_support::PcaEnv;

#[test]
fn sigkill_at_random_moments_then_rerun() {
    let env = PcaEnv::new();
    kill_trials_then_rerun(&env, "k");
}
