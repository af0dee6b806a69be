//! `pca prune-keys`: destroys the HSM key pairs of past generations whose certificates are all
//! expired or revoked and that are no device's current key (rules: [`crate::pca::renew::prune`]).

use time::OffsetDateTime;

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::hsm::keygen::destroy_keys;
use crate::hsm::lock::TokenLock;
use crate::hsm::lookup::KeySpec;
use crate::hsm::role;
use crate::hsm::session::HsmSession;
use crate::hsm::signer::HsmSigner;
use crate::pca::aws::AwsClients;
use crate::pca::ids::DeviceId;
use crate::pca::registry::{DeviceState, Registry};
use crate::pca::renew::key_label_for;
use crate::pca::renew::prune::{verdict, Verdict};

/// `pca prune-keys`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Looks at the key pairs labelled device-<id> and device-<id>-g<n> of every device in the
registry (or one) and destroys those whose certificates are all expired or revoked, that are not
the key of the device's current certificate, while no issuance of the device is open. A key no
certificate carries is kept. `renew` itself never destroys a key.

Examples:
  hsm-demo pca prune-keys --dry-run
  hsm-demo --json pca prune-keys --device-id device-42"
)]
pub struct PruneKeysArgs {
    /// Only this device
    #[arg(long, value_name = "ID")]
    pub device_id: Option<String>,
    /// Report what would be destroyed; destroy nothing
    #[arg(long)]
    pub dry_run: bool,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// One key pair looked at.
#[derive(Debug, serde::Serialize)]
struct Looked {
    device_id: String,
    label: String,
    verdict: Verdict,
    destroyed: bool,
}

/// Runs `pca prune-keys`.
pub fn run(a: PruneKeysArgs, g: &Global) -> Result<()> {
    let one = match &a.device_id {
        Some(d) => Some(DeviceId::parse(d).map_err(|e| Error::Usage(e.one_line()))?),
        None => None,
    };
    let session = HsmSession::connect(&g.connect_options())?;
    let aws = a.aws.clone();
    let states: Vec<(DeviceId, DeviceState)> = block_on(async move {
        let clients = AwsClients::load(&aws.options()).await?;
        let reg = Registry::new(&clients, &aws.table);
        let ids = match one {
            Some(d) => vec![d],
            None => {
                let mut v = Vec::new();
                for c in reg.list(None).await? {
                    v.push(DeviceId::parse(&c.device_id)?);
                }
                v
            }
        };
        let mut out = Vec::new();
        for id in ids {
            let st = reg.device(&id).await?;
            out.push((id, st));
        }
        Ok::<_, Error>(out)
    })??;
    let now = OffsetDateTime::now_utc();
    let mut looked = Vec::new();
    for (id, st) in &states {
        let last = st.history.iter().map(|h| h.generation).max().unwrap_or(0);
        for generation in 0..=last {
            let label = key_label_for(id, generation);
            if let Some(l) = prune_one(&session, id, st, &label, now, a.dry_run)? {
                looked.push(l);
            }
        }
    }
    report(&looked, g)
}

/// Looks at the pair labelled `label` (absent: `None`) and destroys it if its verdict says so.
fn prune_one(
    session: &HsmSession,
    id: &DeviceId,
    st: &DeviceState,
    label: &str,
    now: OffsetDateTime,
    dry_run: bool,
) -> Result<Option<Looked>> {
    let (privs, _) = session.find_labelled_keys(label)?;
    let verdict = match privs.len() {
        0 => return Ok(None),
        1 => {
            let signer = HsmSigner::new(session, &KeySpec::label(label))?;
            role::require_ordinary(label, signer.id())?;
            verdict(st, &signer.spki_der()?, now)
        }
        _ => Verdict::Keep("several private keys carry this label"),
    };
    let mut destroyed = false;
    if verdict == Verdict::Prune && !dry_run {
        let lock = TokenLock::acquire(session)?;
        // Private key first: once it is gone the pair can sign nothing, whatever happens next.
        destroy_keys(session, &KeySpec::label(label), &lock)?;
        destroyed = true;
    }
    Ok(Some(Looked {
        device_id: id.to_string(),
        label: label.to_string(),
        verdict,
        destroyed,
    }))
}

fn report(looked: &[Looked], g: &Global) -> Result<()> {
    if g.json {
        return print_json(&serde_json::to_value(looked).map_err(|e| Error::Other(e.to_string()))?);
    }
    let mut s = String::new();
    for l in looked {
        let what = match (&l.verdict, l.destroyed) {
            (Verdict::Prune, true) => "destroyed".to_string(),
            (Verdict::Prune, false) => "would be destroyed (--dry-run)".to_string(),
            (Verdict::Keep(why), _) => format!("kept: {why}"),
        };
        s.push_str(&format!("{}\t{}\t{what}\n", l.device_id, l.label));
    }
    if looked.is_empty() {
        s.push_str("no device key pairs found\n");
    }
    print_bytes(s.as_bytes())
}
