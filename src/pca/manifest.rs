//! Fleet manifests: CSV or JSON lines, read as a stream, validated as a whole before any AWS call.
//!
//! CSV — a header naming the columns (any order, `device_id` required, the others optional):
//!
//! ```text
//! device_id,cn,san_dns,san_uri,template
//! dev-0001,dev-0001.example.org,dev-0001.example.org;d1.example.org,spiffe://example.org/device/0001,client
//! dev-0002,,,,
//! ```
//!
//! Multi-valued SANs are separated by `;`; fields may be double-quoted (`""` inside quotes is a
//! quote). JSON lines — one object per line with the same keys (`san_dns` / `san_uri` arrays of
//! strings, `cn` / `template` strings or null):
//!
//! ```text
//! {"device_id":"dev-0001","cn":"dev-0001","san_dns":["d1.example.org"],"san_uri":["spiffe://example.org/device/0001"],"template":"client"}
//! ```
//!
//! A `csr` column (CSV) / `"csr"` key (JSON lines) names the device's own CSR (PEM or DER), a
//! path relative to the manifest's directory: that device's key was generated on the device, so
//! no HSM key is made for it (see [`crate::pca::device_csr`] for the checks). Rows with and
//! without a CSR may be mixed; in a CSR row, an empty `cn` / `san_dns` / `san_uri` is taken from
//! the CSR. A manifest that is not a regular file (a pipe) resolves its `csr` paths from the
//! current directory.
//!
//! Both: blank lines and lines starting with `#` are ignored; an empty `cn` means "the device
//! id"; an empty `template` means the run's `--template`. The format is chosen by the extension
//! (`.csv`, `.jsonl`, `.ndjson`), else sniffed from the first record (`{` = JSON lines).
//!
//! [`validate`] is a streaming pre-pass over the whole file (memory: one `HashMap` entry per
//! device id for the duplicate check); [`ManifestReader`] then streams the entries again for the
//! run. Every error names the file and the line, on one line.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pca::csr::CsrRequest;
use crate::pca::ids::{printable, DeviceId};
use crate::pca::issue::Template;

/// Longest accepted manifest line (bytes): keeps memory bounded on a garbage file.
pub const MAX_LINE: usize = 64 * 1024;

/// Manifest format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CSV with a header.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// The CSV columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    DeviceId,
    Cn,
    SanDns,
    SanUri,
    Template,
    Csr,
}

impl Column {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "device_id" => Column::DeviceId,
            "cn" => Column::Cn,
            "san_dns" => Column::SanDns,
            "san_uri" => Column::SanUri,
            "template" => Column::Template,
            "csr" => Column::Csr,
            _ => return None,
        })
    }
}

/// One device of the manifest.
#[derive(Clone, Debug)]
pub struct Entry {
    /// 1-based line number in the file.
    pub line: u64,
    /// Device id.
    pub device: DeviceId,
    /// Subject and SANs (CN = the device id when the manifest leaves it empty).
    pub csr: CsrRequest,
    /// Template (`None` = the run's default).
    pub template: Option<Template>,
    /// The device's own CSR (`csr` column), read and checked: the key is device-generated and
    /// no HSM key is made. `None`: an HSM-held key.
    pub device_csr: Option<crate::pca::csr::Csr>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    device_id: Option<String>,
    #[serde(default)]
    cn: Option<String>,
    #[serde(default)]
    san_dns: Option<Vec<String>>,
    #[serde(default)]
    san_uri: Option<Vec<String>>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    csr: Option<String>,
}

/// Streams the entries of a manifest (one line in memory at a time).
pub struct ManifestReader {
    path: PathBuf,
    reader: BufReader<Box<dyn Read + Send>>,
    format: Format,
    columns: Option<Vec<Column>>,
    line: u64,
    buf: Vec<u8>,
    /// The manifest's directory: `csr` paths are relative to it.
    base: PathBuf,
    /// Read and check the `csr` column's files (false: device ids only, see [`Self::ids_only`]).
    load_csrs: bool,
}

impl std::fmt::Debug for ManifestReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("line", &self.line)
            .finish()
    }
}

impl ManifestReader {
    /// Opens `path`; the format comes from the extension or the first record. A manifest that
    /// is not a regular file (a pipe, `/dev/stdin`, a FIFO) is read once, whole, into a bounded
    /// buffer ([`MAX_PIPED_MANIFEST`]) that every later open in this process reuses: the
    /// validation pass and the run then see the same devices, and sniffing consumes nothing.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::io(format!("cannot open manifest {}", path.display()), e))?;
        if meta.is_dir() {
            return Err(Error::input(format!(
                "manifest {} is a directory",
                path.display()
            )));
        }
        let (format, source): (Format, Box<dyn Read + Send>) = if meta.is_file() {
            let format = match sniff_by_extension(path) {
                Some(f) => f,
                None => sniff_content(open_file(path)?, path)?,
            };
            (format, Box::new(open_file(path)?))
        } else {
            let bytes = piped_manifest(path)?;
            let format = match sniff_by_extension(path) {
                Some(f) => f,
                None => sniff_content(std::io::Cursor::new(bytes.clone()), path)?,
            };
            (format, Box::new(std::io::Cursor::new(bytes)))
        };
        Ok(ManifestReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(64 * 1024, source),
            load_csrs: true,
            format,
            columns: None,
            line: 0,
            buf: Vec::new(),
            // A piped manifest (`/dev/stdin`, a FIFO) has no directory of its own: its CSR paths
            // are relative to the current directory.
            base: match path.parent() {
                Some(p) if meta.is_file() && !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            },
        })
    }

    /// The manifest's devices without their CSR files (`pca decommission --manifest`: a device
    /// leaves the fleet whatever became of its CSR); the `csr` column is ignored.
    pub fn ids_only(mut self) -> Self {
        self.load_csrs = false;
        self
    }

    /// The format in use.
    pub fn format(&self) -> Format {
        self.format
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::input(format!(
            "manifest {} line {}: {msg}",
            self.path.display(),
            self.line
        ))
    }

    /// The next significant line (not blank, not a comment), trimmed; `None` at the end.
    fn next_line(&mut self) -> Result<Option<String>> {
        loop {
            self.buf.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| {
                    Error::io(format!("cannot read manifest {}", self.path.display()), e)
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if self.buf.len() > MAX_LINE && !self.buf.ends_with(b"\n") {
                return Err(self.err(format!("line longer than {MAX_LINE} bytes")));
            }
            let text = std::str::from_utf8(&self.buf).map_err(|_| self.err("not UTF-8"))?;
            let text = text.trim_start_matches('\u{feff}').trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            return Ok(Some(text.to_string()));
        }
    }

    /// The next entry, `None` at the end of the file.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        loop {
            let Some(text) = self.next_line()? else {
                return Ok(None);
            };
            match self.format {
                Format::Jsonl => return self.parse_json(&text).map(Some),
                Format::Csv => {
                    if self.columns.is_none() {
                        self.columns = Some(self.parse_header(&text)?);
                        continue;
                    }
                    return self.parse_csv(&text).map(Some);
                }
            }
        }
    }

    /// Whether a CSV header was seen (for the "header but no devices" message).
    fn saw_header(&self) -> bool {
        self.columns.is_some()
    }

    fn parse_header(&self, text: &str) -> Result<Vec<Column>> {
        let fields = split_csv(text).map_err(|e| self.err(e))?;
        let mut cols = Vec::with_capacity(fields.len());
        for f in &fields {
            let name = f.trim().to_ascii_lowercase();
            let c = Column::parse(&name).ok_or_else(|| {
                self.err(format!(
                    "unknown column '{}' in the CSV header: expected device_id,cn,san_dns,san_uri,template,csr",
                    printable(f)
                ))
            })?;
            if cols.contains(&c) {
                return Err(self.err(format!("column '{name}' appears twice in the CSV header")));
            }
            cols.push(c);
        }
        if !cols.contains(&Column::DeviceId) {
            return Err(self.err(
                "the CSV header has no device_id column (expected device_id,cn,san_dns,san_uri,template)",
            ));
        }
        Ok(cols)
    }

    fn parse_csv(&self, text: &str) -> Result<Entry> {
        let cols = self.columns.as_ref().expect("header parsed");
        let fields = split_csv(text).map_err(|e| self.err(e))?;
        if fields.len() != cols.len() {
            return Err(self.err(format!(
                "{} fields, the header has {} columns",
                fields.len(),
                cols.len()
            )));
        }
        let mut device = String::new();
        let mut cn = None;
        let mut san_dns = Vec::new();
        let mut san_uri = Vec::new();
        let mut template = None;
        let mut csr = None;
        let multi = |s: &str| -> Vec<String> {
            s.split(';')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        for (c, f) in cols.iter().zip(fields) {
            let f = f.trim();
            match c {
                Column::DeviceId => device = f.to_string(),
                Column::Cn => cn = Some(f.to_string()).filter(|s| !s.is_empty()),
                Column::SanDns => san_dns = multi(f),
                Column::SanUri => san_uri = multi(f),
                Column::Template => template = Some(f.to_string()).filter(|s| !s.is_empty()),
                Column::Csr => csr = Some(f.to_string()).filter(|s| !s.is_empty()),
            }
        }
        self.entry(&device, cn, san_dns, san_uri, template, csr)
    }

    fn parse_json(&self, text: &str) -> Result<Entry> {
        // serde would also take a positional array for the struct: only objects are entries.
        if !text.starts_with('{') {
            return Err(self.err(
                "not a JSON object: each line must be an object such as {\"device_id\":\"dev-1\"}",
            ));
        }
        let j: JsonEntry = serde_json::from_str(text).map_err(|e| {
            // serde_json's message ends with "at line 1 column N": keep only the column.
            let msg = e.to_string();
            let msg = msg
                .rsplit_once(" at line 1 column ")
                .map_or(msg.clone(), |(m, c)| format!("{m} (column {c})"));
            self.err(format!("not a JSON object of the manifest: {msg}"))
        })?;
        let device = j
            .device_id
            .ok_or_else(|| self.err("missing \"device_id\""))?;
        self.entry(
            &device,
            j.cn.filter(|s| !s.is_empty()),
            j.san_dns.unwrap_or_default(),
            j.san_uri.unwrap_or_default(),
            j.template.filter(|s| !s.is_empty()),
            j.csr.filter(|s| !s.is_empty()),
        )
    }

    fn entry(
        &self,
        device: &str,
        cn: Option<String>,
        san_dns: Vec<String>,
        san_uri: Vec<String>,
        template: Option<String>,
        csr_path: Option<String>,
    ) -> Result<Entry> {
        if device.is_empty() {
            return Err(self.err("empty device_id"));
        }
        let device = DeviceId::parse(device).map_err(|e| self.err(e.one_line()))?;
        let template = match template {
            Some(t) => Some(Template::parse(&t).map_err(|e| self.err(e.one_line()))?),
            None => None,
        };
        if let Some(rel) = csr_path.filter(|_| self.load_csrs) {
            // A device CSR: the fields given must match it; those left empty come from it.
            let want = CsrRequest {
                cn,
                san_dns,
                san_uri,
            };
            let path = crate::pca::device_csr::resolve_in_dir(&self.base, &rel)
                .map_err(|e| self.err(format!("device {device}: {}", e.one_line())))?;
            let (c, csr) = crate::pca::device_csr::load_device_csr(&path, &want)
                .map_err(|e| self.err(format!("device {device}: {}", e.one_line())))?;
            return Ok(Entry {
                line: self.line,
                device,
                csr,
                template,
                device_csr: Some(c),
            });
        }
        let csr = CsrRequest {
            cn: Some(cn.unwrap_or_else(|| device.to_string())),
            san_dns,
            san_uri,
        };
        csr.validate().map_err(|e| {
            // The CSR checks speak of flags (--cn, --san-dns…): name the manifest fields instead.
            let m = e
                .one_line()
                .replace("--san-dns", "san_dns")
                .replace("--san-uri", "san_uri")
                .replace("--cn", "cn");
            self.err(format!("device {device}: {m}"))
        })?;
        Ok(Entry {
            line: self.line,
            device,
            csr,
            template,
            device_csr: None,
        })
    }
}

fn sniff_by_extension(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(Format::Csv),
        "jsonl" | "ndjson" => Some(Format::Jsonl),
        _ => None,
    }
}

fn open_file(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(format!("cannot open manifest {}", path.display()), e))
}

/// Largest manifest read from something that is not a regular file (held in memory, since a
/// pipe can be read only once): 64 MiB, about 500,000 devices.
pub const MAX_PIPED_MANIFEST: u64 = 64 * 1024 * 1024;

/// The whole content of a manifest that is not a regular file, read once per process.
fn piped_manifest(path: &Path) -> Result<std::sync::Arc<[u8]>> {
    use std::io::IsTerminal;
    type Cache = std::sync::Mutex<HashMap<PathBuf, std::sync::Arc<[u8]>>>;
    static READ: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let cache = READ.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(b) = cache.get(path) {
        return Ok(b.clone());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
            eprintln!(
                "note: reading manifest {} from a pipe (waiting for its writer to finish)",
                path.display()
            );
        }
    }
    let f = open_file(path)?;
    if f.is_terminal() {
        return Err(Error::input(format!(
            "manifest {} is a terminal: redirect or pipe the manifest into it",
            path.display()
        )));
    }
    let what = format!(
        "manifest {} (not a regular file, so held in memory)",
        path.display()
    );
    let bytes: std::sync::Arc<[u8]> =
        crate::fsutil::read_bounded(f, &what, MAX_PIPED_MANIFEST)?.into();
    cache.insert(path.to_path_buf(), bytes.clone());
    Ok(bytes)
}

fn sniff_content(source: impl Read, path: &Path) -> Result<Format> {
    let mut r = BufReader::new(source.take(16 * 1024 * 1024));
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(format!("cannot read manifest {}", path.display()), e))?;
        if n == 0 {
            return Ok(Format::Csv); // empty: the reader reports it
        }
        let t = String::from_utf8_lossy(&line);
        let t = t.trim_start_matches('\u{feff}').trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        return Ok(if t.starts_with('{') || t.starts_with('[') {
            Format::Jsonl
        } else {
            Format::Csv
        });
    }
}

/// Splits one CSV record: `,`-separated, fields optionally in double quotes with `""` escapes.
fn split_csv(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                '"' => quoted = false,
                _ => cur.push(c),
            }
            continue;
        }
        match c {
            ',' => {
                out.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            '"' if cur.trim().is_empty() && !was_quoted => {
                cur.clear();
                quoted = true;
                was_quoted = true;
            }
            '"' => return Err("stray double quote inside an unquoted field".into()),
            _ if was_quoted && !c.is_whitespace() => {
                return Err("text after a closing double quote".into())
            }
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated double quote".into());
    }
    out.push(cur);
    Ok(out)
}

/// What the validation pass found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ManifestInfo {
    /// The format.
    pub format: Format,
    /// Number of devices.
    pub devices: u64,
    /// Templates named explicitly by some entry.
    pub templates: Vec<Template>,
    /// Entries with a device CSR (`csr` column): the others need an HSM key.
    pub csrs: u64,
}

/// Validates the whole manifest (streaming): syntax, device ids, SANs, templates, duplicates, and
/// that it holds at least one device. Nothing else is touched.
pub fn validate(path: &Path) -> Result<ManifestInfo> {
    let mut r = ManifestReader::open(path)?;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut templates = Vec::new();
    let mut devices = 0u64;
    let mut csrs = 0u64;
    let mut keys: HashMap<Vec<u8>, (String, u64)> = HashMap::new();
    while let Some(e) = r.next_entry()? {
        if let Some(c) = &e.device_csr {
            use sha2::Digest;
            let k = sha2::Sha256::digest(&c.spki).to_vec();
            if let Some((other, line)) = keys.insert(k, (e.device.to_string(), e.line)) {
                return Err(Error::input(format!(
                    "manifest {} line {}: device {}: its CSR's public key is also the key of device {other} (line {line}): one key, one device",
                    path.display(),
                    e.line,
                    e.device
                )));
            }
            csrs += 1;
        }
        if let Some(first) = seen.insert(e.device.to_string(), e.line) {
            return Err(Error::input(format!(
                "manifest {} line {}: duplicate device id '{}' (first on line {first})",
                path.display(),
                e.line,
                e.device
            )));
        }
        if let Some(t) = e.template {
            if !templates.contains(&t) {
                templates.push(t);
            }
        }
        devices += 1;
    }
    if devices == 0 {
        let why = if r.line == 0 {
            "is empty".to_string()
        } else if r.saw_header() {
            "has a header but no devices".to_string()
        } else {
            format!("has no devices ({} lines, all blank or comments)", r.line)
        };
        return Err(Error::input(format!("manifest {} {why}", path.display())));
    }
    Ok(ManifestInfo {
        format: r.format(),
        devices,
        templates,
        csrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, body: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(name);
        std::fs::write(&p, body).unwrap();
        (d, p)
    }

    #[test]
    fn csv_with_quotes_multi_sans_defaults() {
        let (_d, p) = write(
            "m.csv",
            "# fleet\n\ndevice_id,cn,san_dns,san_uri,template\n\
             d1,\"Dev, One\",a.example.org;b.example.org,spiffe://x.org/d1,server\n\
             d2,,,,\n",
        );
        let info = validate(&p).unwrap();
        assert_eq!(info.devices, 2);
        assert_eq!(info.templates, vec![Template::Server]);
        let mut r = ManifestReader::open(&p).unwrap();
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.line, 4);
        assert_eq!(e.csr.cn.as_deref(), Some("Dev, One"));
        assert_eq!(e.csr.san_dns, vec!["a.example.org", "b.example.org"]);
        assert_eq!(e.template, Some(Template::Server));
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.csr.cn.as_deref(), Some("d2"));
        assert!(e.template.is_none());
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn jsonl_sniffed_without_extension() {
        let (_d, p) = write(
            "m.txt",
            "# c\n{\"device_id\":\"d1\",\"san_uri\":[\"spiffe://x.org/d1\"],\"template\":\"plain\"}\n",
        );
        let info = validate(&p).unwrap();
        assert_eq!(info.format, Format::Jsonl);
        assert_eq!(info.devices, 1);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "a.csv",
                "device_id,cn\nd1,x\nd1,y\n",
                "line 3: duplicate device id 'd1' (first on line 2)",
            ),
            (
                "b.csv",
                "device_id,template\nd1,gold\n",
                "line 2: unknown template 'gold'",
            ),
            (
                "c.csv",
                "device_id,cn\nd1\n",
                "line 2: 1 fields, the header has 2 columns",
            ),
            ("d.csv", "", "is empty"),
            ("e.csv", "# only\n\n# comments\n", "has no devices (3 lines"),
            ("f.csv", "device_id\n", "has a header but no devices"),
            (
                "g.jsonl",
                "{\"device_id\":\"d1\"}\n{\"device\":\"d2\"}\n",
                "line 2: not a JSON object",
            ),
            (
                "h.csv",
                "device_id,cn\nbad id,x\n",
                "line 2: invalid device id",
            ),
            ("i.csv", "id,cn\n", "line 1: unknown column 'id'"),
            (
                "j.csv",
                "device_id,san_uri\nd1,notauri\n",
                "line 2: device d1: invalid san_uri",
            ),
            (
                "k.csv",
                "device_id,cn\n\"d1,x\n",
                "line 2: unterminated double quote",
            ),
        ];
        for (name, body, want) in cases {
            let (_d, p) = write(name, body);
            let e = validate(&p).unwrap_err().one_line();
            assert!(e.contains(want), "{name}: {e}");
            assert!(e.starts_with("manifest "), "{name}: {e}");
        }
    }

    #[test]
    fn jsonl_lines_must_be_objects() {
        for body in [
            "[\"d1\",null,null,null,null]\n",
            "{\"device_id\":\"d1\"}\n[\"d2\"]\n",
            "\"d1\"\n",
        ] {
            let (_d, p) = write("m.jsonl", body);
            let e = validate(&p).unwrap_err().one_line();
            assert!(
                e.contains("not a JSON object: each line must be an object"),
                "{body}: {e}"
            );
        }
        // Sniffed without an extension, an array line is JSON lines too (and refused as such).
        let (_d, p) = write("m.txt", "[\"d1\",null,null,null,null]\n");
        let e = validate(&p).unwrap_err().one_line();
        assert!(e.contains("line 1: not a JSON object"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_manifest_is_read_once_and_reused() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fleet");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let w = fifo.clone();
        // The writer writes once and closes: a second open of the FIFO would block for ever.
        let writer = std::thread::spawn(move || {
            std::fs::write(&w, "device_id,cn\nf1,\nf2,\n").unwrap();
        });
        let info = validate(&fifo).unwrap();
        writer.join().unwrap();
        assert_eq!((info.format, info.devices), (Format::Csv, 2));
        let mut r = ManifestReader::open(&fifo).unwrap();
        let mut ids = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            ids.push(e.device.to_string());
        }
        assert_eq!(ids, ["f1", "f2"]);
    }

    #[test]
    fn split_csv_rules() {
        assert_eq!(split_csv("a,,b").unwrap(), vec!["a", "", "b"]);
        assert_eq!(split_csv("\"a\"\"b\",c").unwrap(), vec!["a\"b", "c"]);
        assert!(split_csv("a\"b").is_err());
        assert!(split_csv("\"a\"x").is_err());
    }
}
