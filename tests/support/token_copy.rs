//! A copy of the fixture's SoftHSM token for a test that stops or kills the
//! process serving it. SoftHSM takes fcntl locks on its token files while
//! it reads them: a process stopped (SIGSTOP) inside such a read stalls
//! every other reader of the directory, and one killed while writing could
//! leave a file the others cannot load. Seen: while one test held its
//! p11-kit server stopped, another's found "no token labelled 'qsign'".

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::env;

pub struct TokenCopy {
    _temp: tempfile::TempDir,
    /// `SOFTHSM2_CONF` for the copy.
    pub conf: PathBuf,
    tokens: PathBuf,
    /// The token objects as copied.
    objects: BTreeSet<PathBuf>,
}

impl TokenCopy {
    pub fn new() -> Self {
        let temp = tempfile::tempdir().expect("tempdir");
        let tokens = temp.path().join("tokens");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(env().dir.join("tokens"))
            .arg(&tokens)
            .status()
            .expect("cp");
        assert!(copied.success(), "copy of the fixture's token");
        let conf = temp.path().join("softhsm2.conf");
        let template = include_str!("../../softhsm/softhsm2.conf.in");
        let text = template.replace("@TOKENDIR@", tokens.to_str().expect("utf-8 path"));
        std::fs::write(&conf, text).expect("softhsm2.conf");
        let objects = token_objects(&tokens);
        Self {
            _temp: temp,
            conf,
            tokens,
            objects,
        }
    }

    pub fn tokens(&self) -> &Path {
        &self.tokens
    }

    /// Token objects made since the copy, none of which a test may leave:
    /// SoftHSM keeps each token object in a file `UUID.object` of its
    /// token's directory (ephemeral keys are session objects, no file).
    pub fn new_objects(&self) -> Vec<PathBuf> {
        token_objects(&self.tokens)
            .difference(&self.objects)
            .cloned()
            .collect()
    }
}

fn token_objects(tokens: &Path) -> BTreeSet<PathBuf> {
    let mut objects = BTreeSet::new();
    for token in std::fs::read_dir(tokens)
        .expect("token directory")
        .flatten()
    {
        for file in std::fs::read_dir(token.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = file.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".object") && name != "token.object" {
                objects.insert(path);
            }
        }
    }
    objects
}
