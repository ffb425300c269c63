//! Every file of `../shared/corpus/realworld/`: signed (invisible and
//! visible), then judged by qpdf and pdfsig.

use super::support::*;

fn realworld() -> Vec<(String, Vec<u8>)> {
    let dir = shared().join("corpus/realworld");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pdf"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect()
}

#[test]
fn realworld_files_prepare() {
    let mut failures = Vec::new();
    for (name, pdf) in realworld() {
        if let Err(e) = crate::pades::prepare_bytes(&pdf, &request(Some(visible(1)))) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Signs every file invisibly and visibly (through the reader and the
/// slice path) and checks each with qpdf and pdfsig; lists every failure.
#[test]
fn realworld_files_sign_valid() {
    if !tools(SIGNING_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for (name, pdf) in realworld() {
        let stem = name.trim_end_matches(".pdf").to_owned();
        for (suffix, req) in [("inv", request(None)), ("vis", request(Some(visible(1))))] {
            let dir = work.path();
            let outcome = std::panic::catch_unwind(|| {
                sign_and_check(&pdf, &req, dir, &format!("{stem}-{suffix}"));
            });
            if let Err(e) = outcome {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name} ({suffix}): {msg}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
