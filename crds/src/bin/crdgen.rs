//! `crdgen`: writes the CRD YAML of Strait's custom resources into `crds/` and
//! `charts/strait/crds/` (paths relative to the workspace root, or to `--root DIR`), or with
//! `--check` only reports files that are stale and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

use strait_crds::generate::{OUTPUT_DIRS, stale_files, write_all};

fn main() -> ExitCode {
    let mut check = false;
    let mut root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--root" => match args.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => return usage("--root needs a directory"),
            },
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let mut stale_count = 0;
    for dir in OUTPUT_DIRS {
        let dir = root.join(dir);
        let result = if check {
            stale_files(&dir).map(|stale| {
                for path in &stale {
                    eprintln!("stale: {}", path.display());
                }
                stale_count += stale.len();
            })
        } else {
            write_all(&dir).map(|written| {
                for path in written {
                    println!("wrote {}", path.display());
                }
            })
        };
        if let Err(e) = result {
            eprintln!("crdgen: {e}");
            return ExitCode::FAILURE;
        }
    }
    if stale_count > 0 {
        eprintln!("crdgen: {stale_count} stale file(s); run crdgen without --check");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("crdgen: {problem}\nusage: crdgen [--check] [--root DIR]");
    ExitCode::from(2)
}
