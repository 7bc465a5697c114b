//! An append that fails with ENOSPC must leave no partial batch and keep the log usable. Runs on a
//! 256 KiB tmpfs; skipped (with a message) where mounting is not permitted.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use strait_storage::LogError;

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path) -> Option<Unmount> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(Unmount(dir.to_path_buf())),
        Ok(o) => {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs to simulate ENOSPC: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run mount to simulate ENOSPC: {e}");
            None
        }
    }
}

#[test]
fn enospc_append_leaves_the_log_intact() {
    let base = tempfile::tempdir().expect("tempdir");
    let mnt = base.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let Some(_mounted) = mount_tmpfs(&mnt) else {
        return;
    };
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 64 * 1024]).expect("filler");
    let mgr = open(&mnt);
    let log = create(&mgr, small_config());
    let request = batch(10, 0, 1000);
    let mut failure = None;
    for _ in 0..100 {
        match log.append(&request, 0, 0) {
            Ok(_) => {}
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let err = failure.expect("a 256 KiB tmpfs must fill up");
    match &err {
        LogError::Io(io) => assert_eq!(io.raw_os_error(), Some(28), "{io}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    let leo = log.log_end_offset();
    assert!(leo > 0);
    let segment = segment_files(&log.dir(), "log").pop().expect("segment");
    assert_eq!(
        std::fs::metadata(&segment).expect("meta").len(),
        log.size_bytes(),
        "no partial batch remains"
    );
    let bytes = read_bytes(&log, 0);
    let found = batches_in(&bytes);
    assert_eq!(found.len() as i64 * 10, leo);
    let mut pos = 0;
    for (_, _, _, size) in &found {
        let b = &bytes[pos..pos + size];
        assert_eq!(
            u32::from_be_bytes([b[17], b[18], b[19], b[20]]),
            crc32c::crc32c(&b[21..])
        );
        pos += size;
    }
    // Once space is back the log carries on at the same offset.
    std::fs::remove_file(&filler).expect("free space");
    let info = log
        .append(&request, 0, 0)
        .expect("append after freeing space");
    assert_eq!(info.first_offset, leo);
    drop(mgr);
}
