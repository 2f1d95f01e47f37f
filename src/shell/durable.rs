//! Durability across a power cut: of the store, which sled alone does not give, and of
//! the files councild writes itself (keys, tokens, mail written as files).
//!
//! sled 0.34 ends a flush with `sync_file_range` on its log (`db`): the data reaches the
//! device queue, but neither the disk's write cache nor the file's size is made durable, and
//! it never syncs its `conf`, its blob files or the folder after renaming a snapshot. So
//! after sled's flush, [`Sync::sync`] runs `fdatasync` on the log and, when the folder's
//! files changed (a snapshot renamed, a blob written or removed), `fsync` on each new file
//! and on the folders. Calls that overlap share one sync: a caller waits at most for the
//! sync in progress and the one after it, like the writer's group commit.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why a sync failed: what it covered may not be durable, and must not be acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Flush(#[from] sled::Error),
    #[error("the files in {0} could not be made durable: {1}")]
    Sync(String, std::io::Error),
}

type Result<T> = std::result::Result<T, Error>;

pub(crate) struct Sync {
    files: Arc<Files>,
    /// One sync at a time; `asked` and `done` count calls, so that a call whose writes an
    /// earlier sync already covered returns at once.
    gate: tokio::sync::Mutex<()>,
    asked: AtomicU64,
    done: AtomicU64,
    /// Told after each sync, for the calls that wait for another's sync to cover them.
    synced: tokio::sync::Notify,
    /// When the last two [`Sync::sync`]s were asked for (the writer's commits), in
    /// milliseconds since `opened` (0: never).
    opened: std::time::Instant,
    last_sync_ms: AtomicU64,
    previous_sync_ms: AtomicU64,
}

/// A [`Sync::sync_soon`] rides on the writer's syncs while the writer is committing one
/// batch after another (its last two syncs within `BUSY`), waiting at most [`RIDE_WAIT`];
/// otherwise (one commit that opened a ballot, say) it syncs at once.
const BUSY: std::time::Duration = std::time::Duration::from_millis(50);
const RIDE_WAIT: std::time::Duration = std::time::Duration::from_millis(30);

/// What a sync touches; shared with the blocking thread that runs it.
struct Files {
    folder: PathBuf,
    /// sled's log, opened a second time: `fdatasync` applies to the file, not the handle.
    log: File,
    /// The files of the folder (and of `blobs/`) known to be durable.
    known: Mutex<BTreeSet<PathBuf>>,
}

impl Sync {
    /// Makes the folder as sled left it at open durable (its `conf` is never synced by
    /// sled), with the folders above it that may just have been created.
    pub(crate) fn open(folder: &Path) -> Result<Sync> {
        let failed = |e: std::io::Error| Error::Sync(folder.display().to_string(), e);
        let log = File::open(folder.join("db")).map_err(failed)?;
        let known = sync_all(folder).map_err(failed)?;
        Ok(Sync {
            files: Arc::new(Files {
                folder: folder.to_path_buf(),
                log,
                known: Mutex::new(known),
            }),
            gate: tokio::sync::Mutex::new(()),
            asked: AtomicU64::new(0),
            done: AtomicU64::new(0),
            synced: tokio::sync::Notify::new(),
            opened: std::time::Instant::now(),
            last_sync_ms: AtomicU64::new(0),
            previous_sync_ms: AtomicU64::new(0),
        })
    }

    /// Flushes sled and makes what it wrote durable. Every write made before the call is
    /// durable when it returns `Ok`; an error means it may not be, and must not be
    /// acknowledged.
    pub(crate) async fn sync(&self, db: &sled::Db) -> Result<()> {
        let ticket = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.opened.elapsed().as_millis() as u64;
        let last = self.last_sync_ms.swap(now.max(1), Ordering::SeqCst);
        self.previous_sync_ms.store(last, Ordering::SeqCst);
        self.sync_for(db, ticket).await
    }

    /// The same for a background task's writes (the outbox's marks): while the writer is
    /// committing, they ride on its next sync (waiting at most [`RIDE_WAIT`]) instead of
    /// making its commit wait behind a sync of their own; otherwise they sync at once.
    pub(crate) async fn sync_soon(&self, db: &sled::Db) -> Result<()> {
        let ticket = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let previous = self.previous_sync_ms.load(Ordering::SeqCst);
        let now = self.opened.elapsed().as_millis() as u64;
        let busy = previous > 0 && now.saturating_sub(previous) < BUSY.as_millis() as u64;
        let deadline = tokio::time::Instant::now() + RIDE_WAIT;
        if busy {
            loop {
                let synced = self.synced.notified();
                tokio::pin!(synced);
                // Registered before the check, so that a sync ending in between is not missed.
                synced.as_mut().enable();
                if self.done.load(Ordering::SeqCst) >= ticket {
                    return Ok(());
                }
                if tokio::time::timeout_at(deadline, synced).await.is_err() {
                    break;
                }
            }
        }
        self.sync_for(db, ticket).await
    }

    async fn sync_for(&self, db: &sled::Db, ticket: u64) -> Result<()> {
        let _gate = self.gate.lock().await;
        if self.done.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        // Every call counted so far made its writes before it was counted.
        let covers = self.asked.load(Ordering::SeqCst);
        // sled's flush and the syncs on one blocking thread: one hand-over each way per
        // commit (sled's `flush_async` would add a hop to its own thread pool and back).
        let (db, files) = (db.clone(), self.files.clone());
        let folder = files.folder.display().to_string();
        tokio::task::spawn_blocking(move || {
            db.flush()?;
            let failed = |e| Error::Sync(files.folder.display().to_string(), e);
            files.log.sync_data().map_err(failed)?;
            files.sync_new().map_err(failed)
        })
        .await
        .unwrap_or_else(|e| Err(Error::Sync(folder, std::io::Error::other(e))))?;
        self.done.store(covers, Ordering::SeqCst);
        self.synced.notify_waiters();
        Ok(())
    }
}

impl Files {
    /// Syncs files that appeared since the last sync, and the folders when any file came
    /// or went (a rename or removal is durable only once its folder is).
    fn sync_new(&self) -> std::io::Result<()> {
        let now = files(&self.folder)?;
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if *known == now {
            return Ok(());
        }
        for file in now.difference(&known) {
            match File::open(file) {
                Ok(f) => f.sync_all()?,
                // Made and removed again since the listing (a snapshot being generated).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        sync_folders(&self.folder)?;
        *known = now;
        Ok(())
    }
}

/// Makes every file of a sled folder durable, the folder itself and the one above it
/// (which may just have made it); the files synced.
pub(crate) fn sync_all(folder: &Path) -> std::io::Result<BTreeSet<PathBuf>> {
    let known = files(folder)?;
    for file in &known {
        File::open(file)?.sync_all()?;
    }
    sync_folders(folder)?;
    if let Some(parent) = folder.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_folder(parent)?;
    }
    Ok(known)
}

/// The files of sled's folder and of its `blobs/` folder.
fn files(folder: &Path) -> std::io::Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    for dir in [folder.to_path_buf(), folder.join("blobs")] {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.insert(entry.path());
            }
        }
    }
    Ok(files)
}

fn sync_folders(folder: &Path) -> std::io::Result<()> {
    sync_folder(folder)?;
    match sync_folder(&folder.join("blobs")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

pub(crate) fn sync_folder(folder: &Path) -> std::io::Result<()> {
    File::open(folder)?.sync_all()
}

/// Creates the data folder readable by its owner only (the store holds every vote, the
/// `.eml` files every personal ballot link), and narrows a folder that exists to that.
/// Files the process creates afterwards are its owner's only too (umask 077).
pub fn private_folder(folder: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // SAFETY: umask only sets the process's file mode mask; it cannot fail.
        unsafe { libc::umask(0o077) };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)?;
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(folder)
}

/// Writes a whole file so that, after a crash or a power cut, it holds either its old
/// content (or is absent) or all of `bytes`, never a part: a temporary file beside it,
/// synced, renamed over it, and the folder synced. `private` files are readable by their
/// owner only, from the moment they exist.
pub fn write_file(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    use std::io::Write;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(folder)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = folder.join(format!(".{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    sync_folder(folder)
}
