//! Compaction: the store rewritten with only what it holds now.
//!
//! sled keeps what was overwritten or removed (every mail sent, every item row rewritten)
//! in its log until its segment cleaner reclaims it, lazily: a store grows with everything
//! ever written to it, and its start grows with it. [`compact`] (`councild compact`, with the
//! daemon stopped) copies every tree into a new store beside the old, `store.compact`, makes
//! it durable with a marker file in it, opens it again to check that it holds the same rows
//! (sled's CRC32 of every tree's name, keys and values), and puts it in place by two renames,
//! each made durable before the next step:
//!
//! ```text
//! store → store.old,   store.compact → store,   store.old removed, the marker removed
//! ```
//!
//! [`recover`], run by [`Store::open`](super::Store::open) and by [`compact`], finishes or
//! undoes an interrupted compaction, so that a crash or a power cut at any point leaves one
//! whole store: before the first rename the old one (the copy is removed), between the
//! renames the old one (renamed back), after the second the new one (it has the marker).
//! A `store.old` beside a store without the marker is not removed: the start is refused.
//! Both hold `store.lock`, so that a daemon does not start during a compaction.

use std::path::{Path, PathBuf};

use super::{Error, Result, Store, open_db};
use crate::shell::durable;

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// The store's bytes on disk before and after.
    pub before: u64,
    pub after: u64,
    /// The rows copied, and their bytes (keys and values): the live data.
    pub rows: u64,
    pub live: u64,
    /// The trees copied (sled's own default tree not counted).
    pub trees: usize,
}

/// Bytes of rows copied per sled batch.
const CHUNK: usize = 4 << 20;
const COPY: &str = "compact";
const OLD: &str = "old";
const LOCK: &str = "lock";
/// In a compacted copy from before its first rename until the old store is removed.
const MARKER: &str = "compacted";
const DEFAULT_TREE: &[u8] = b"__sled__default";

/// Rewrites the store in `path` with only the rows it holds. Refused while a daemon has the
/// store open ([`Error::InUse`]) and when there is no store. An error before the first
/// rename leaves the store as it was; after it, the store before is put back.
pub fn compact(path: &Path) -> Result<Compacted> {
    let _lock = lock_store(path)?;
    recover(path)?;
    let io = |e: std::io::Error| Error::Open(path.display().to_string(), sled::Error::Io(e));
    if !path.join("db").try_exists().map_err(io)? {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "there is no store here",
        )));
    }
    let (copy, old) = (beside(path, COPY), beside(path, OLD));
    let before = folder_bytes(path);
    let copied = {
        let db = open_db(path)?;
        copy_rows(&db, &copy)
    };
    let checked = copied.and_then(|copied| {
        durable::write_file(&copy.join(MARKER), b"", true).map_err(io)?;
        // Read back as the daemon will read it.
        let reread = open_db(&copy)?.checksum()?;
        if reread != copied.3 {
            return Err(Error::Corrupt {
                key: copy.display().to_string(),
                reason: "the compacted copy, read back, does not hold the same rows".into(),
            });
        }
        own_like(&path.join("db"), &copy).map_err(io)?;
        durable::sync_all(&copy).map_err(io)?;
        Ok(copied)
    });
    let (rows, live, trees, _) = checked.inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&copy);
    })?;
    let swapped = std::fs::rename(path, &old)
        .and_then(|()| sync_parent(path))
        .and_then(|()| std::fs::rename(&copy, path))
        .and_then(|()| sync_parent(path));
    if let Err(e) = swapped {
        recover(path)?;
        return Err(io(e));
    }
    // The new store is in place: what is left is cleaning up, which the next start
    // finishes if it fails here.
    if let Err(e) = recover(path) {
        tracing::warn!(error = %e, "the store is compacted, but what it replaced is not removed yet");
    }
    Ok(Compacted {
        before,
        after: folder_bytes(path),
        rows,
        live,
        trees,
    })
}

/// Copies every tree of `db` into a new store at `copy`: the rows, their bytes, the trees
/// and the checksum of what was copied.
fn copy_rows(db: &sled::Db, copy: &Path) -> Result<(u64, u64, usize, u32)> {
    let failed = |e: std::io::Error| Error::Open(copy.display().to_string(), sled::Error::Io(e));
    if copy.try_exists().map_err(failed)? {
        std::fs::remove_dir_all(copy).map_err(failed)?;
    }
    durable::private_folder(copy).map_err(failed)?;
    let new = open_db(copy)?;
    let (mut rows, mut live) = (0u64, 0u64);
    let names = db.tree_names();
    for name in &names {
        let (from, to) = (db.open_tree(name)?, new.open_tree(name)?);
        let (mut batch, mut size) = (sled::Batch::default(), 0);
        for row in from.iter() {
            let (k, v) = row?;
            size += k.len() + v.len();
            rows += 1;
            batch.insert(k, v);
            if size >= CHUNK {
                to.apply_batch(std::mem::take(&mut batch))?;
                live += size as u64;
                size = 0;
            }
        }
        to.apply_batch(batch)?;
        live += size as u64;
    }
    let checksum = db.checksum()?;
    if new.checksum()? != checksum {
        return Err(Error::Corrupt {
            key: copy.display().to_string(),
            reason: "the compacted copy does not hold the same rows".into(),
        });
    }
    new.flush()?;
    let trees = names.iter().filter(|n| &n[..] != DEFAULT_TREE).count();
    Ok((rows, live, trees, checksum))
}

/// Gives every file and folder under `folder` the owner of `like`: a compaction run as root
/// leaves a store the daemon's own user can open.
#[cfg(unix)]
fn own_like(like: &Path, folder: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(like)?;
    let (uid, gid) = (owner.uid(), owner.gid());
    let mine = std::fs::metadata(folder)?;
    if (mine.uid(), mine.gid()) == (uid, gid) {
        return Ok(());
    }
    fn walk(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        if std::fs::symlink_metadata(path)?.is_dir() {
            for entry in std::fs::read_dir(path)? {
                walk(&entry?.path(), uid, gid)?;
            }
        }
        Ok(())
    }
    walk(folder, uid, gid)
}

#[cfg(not(unix))]
fn own_like(_like: &Path, _folder: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Takes the store's lock (`store.lock` beside it), for a compaction or for recovering and
/// opening the store: a daemon starting during a compaction is refused, instead of taking
/// the compaction's copy for one a crash left.
pub(super) fn lock_store(path: &Path) -> Result<std::fs::File> {
    let lock = beside(path, LOCK);
    let failed = |e: std::io::Error| Error::Open(lock.display().to_string(), sled::Error::Io(e));
    std::fs::create_dir_all(parent(path)).map_err(failed)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::InUse(
            path.display().to_string(),
            sled::Error::Io(std::io::Error::other(
                "another councild is opening or compacting it",
            )),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(failed(e)),
    }
}

/// Finishes or undoes a compaction a crash interrupted (see the module's comment); the
/// caller holds [`lock_store`].
pub(super) fn recover(path: &Path) -> Result<()> {
    let (copy, old) = (beside(path, COPY), beside(path, OLD));
    let io = |e: std::io::Error| Error::Open(path.display().to_string(), sled::Error::Io(e));
    let exists = |p: &Path| p.try_exists().map_err(io);
    if !exists(path)? {
        if exists(&old)? {
            tracing::warn!(store = %path.display(), "a compaction was interrupted between its renames: the store before it is put back");
            std::fs::rename(&old, path).map_err(io)?;
            sync_parent(path).map_err(io)?;
        } else {
            return Ok(());
        }
    }
    if exists(&copy)? {
        tracing::warn!(folder = %copy.display(), "removing an unfinished compaction's copy");
        std::fs::remove_dir_all(&copy).map_err(io)?;
        sync_parent(path).map_err(io)?;
    }
    let marker = path.join(MARKER);
    if exists(&old)? {
        if !exists(&marker)? {
            return Err(Error::Open(
                path.display().to_string(),
                sled::Error::Unsupported(format!(
                    "{} is beside it and it is not the compacted store that replaced it: move one of the two away",
                    old.display()
                )),
            ));
        }
        tracing::debug!(folder = %old.display(), "removing the store a compaction replaced");
        std::fs::remove_dir_all(&old).map_err(io)?;
        sync_parent(path).map_err(io)?;
    }
    if exists(&marker)? {
        std::fs::remove_file(&marker).map_err(io)?;
        durable::sync_folder(path).map_err(io)?;
    }
    Ok(())
}

impl Store {
    /// The bytes of every row in the store (keys and values): what a compaction keeps.
    pub fn live_bytes(&self) -> Result<u64> {
        let mut bytes = 0;
        for name in self.db.tree_names() {
            for row in self.db.open_tree(name)?.iter() {
                let (k, v) = row?;
                bytes += (k.len() + v.len()) as u64;
            }
        }
        Ok(bytes)
    }
}

/// `store.compact` beside `store`.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// The folder that holds the store (the data folder).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    durable::sync_folder(parent(path))
}

/// The bytes of the files in a folder and the folders under it.
pub fn folder_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
