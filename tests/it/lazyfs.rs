//! A LazyFS-style file system for the power-cut tests: FUSE, served by this test process,
//! passing every operation through to a backing folder except file data. Data written and
//! not yet fsynced stays in memory (per inode: the dirty ranges; the logical size is the
//! larger of the backing file's and the dirty data's end) and reaches the backing file only
//! on `fsync`/`fdatasync`. A close is not a sync (`flush`/`release` write nothing), and
//! neither is `sync_file_range`: with `direct_io` there is no page cache for it to write.
//! Metadata (create, mkdir, rename, unlink, rmdir, truncate, chmod) passes through at once,
//! as in LazyFS, so a renamed temp file whose data was never synced comes back empty.
//!
//! A power cut (`Mounted::power_cut`) unmounts and drops the dirty data unwritten, then
//! mounts a fresh instance on the same backing folder: what was synced is all that is left.
//! Kill the processes using the mount first. Entries and attributes have no TTL and files
//! are opened `direct_io`, so the kernel caches nothing that could hide the cut; nothing is
//! fsynced on the backing folder itself, since the host does not lose power.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackgroundSession, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

/// Nothing is cached by the kernel: every lookup and getattr asks the layer.
const TTL: Duration = Duration::ZERO;

/// Whether FUSE can be mounted here (checked once): tests skip with this message if not.
pub fn usable() -> Result<(), String> {
    static USABLE: OnceLock<Result<(), String>> = OnceLock::new();
    USABLE
        .get_or_init(|| {
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/fuse")
                .map_err(|e| format!("/dev/fuse not usable: {e}"))?;
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let (backing, at) = (dir.path().join("backing"), dir.path().join("at"));
            LazyFs::mount(&backing, &at)
                .and_then(Mounted::unmount)
                .map_err(|e| format!("cannot mount a FUSE file system: {e}"))
        })
        .clone()
}

/// A mounted layer. Dropping it unmounts it, which is a power cut too.
pub struct Mounted {
    backing: PathBuf,
    at: PathBuf,
    session: Option<BackgroundSession>,
    state: Arc<Mutex<State>>,
}

impl Mounted {
    /// Unmounts, drops every write not fsynced, and mounts a fresh layer on the same
    /// backing folder. The processes that used the mount must be dead (SIGKILL) first.
    pub fn power_cut(mut self) -> io::Result<Mounted> {
        self.stop()?;
        LazyFs::mount(&self.backing, &self.at)
    }

    /// Unmounts (what was not fsynced is lost, as in a cut).
    pub fn unmount(mut self) -> io::Result<()> {
        self.stop()
    }

    /// Bytes written and not yet fsynced: what a cut now would lose.
    pub fn unsynced_bytes(&self) -> u64 {
        let state = self.state.lock().unwrap();
        state.nodes.values().map(|n| n.dirty.bytes()).sum()
    }

    fn stop(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        unmount(&self.at)?;
        // The session thread ends when the kernel closes the connection; its dirty data
        // goes with it, unwritten.
        let _ = session.join();
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Unmounts `at`, waiting a little while a process that just died still holds it; if it
/// stays busy, detaches it all the same (nothing is left mounted) and says so.
fn unmount(at: &Path) -> io::Result<()> {
    let c = CString::new(at.as_os_str().as_bytes())?;
    for _ in 0..100 {
        // SAFETY: a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(e);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: a valid C string.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    Err(io::Error::other(format!(
        "{}: still in use, detached (kill its users before a power cut)",
        at.display()
    )))
}

/// The file system: the backing folder, and what it knows of each inode.
pub struct LazyFs {
    backing: PathBuf,
    state: Arc<Mutex<State>>,
}

impl LazyFs {
    /// Mounts a fresh layer of `backing` at `at` (both folders are created if missing),
    /// served by a thread of this process until unmounted.
    pub fn mount(backing: &Path, at: &Path) -> io::Result<Mounted> {
        fs::create_dir_all(backing)?;
        fs::create_dir_all(at)?;
        let state = Arc::new(Mutex::new(State::new()));
        let fs = LazyFs {
            backing: backing.to_path_buf(),
            state: state.clone(),
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![MountOption::FSName("lazyfs".into()), MountOption::NoAtime];
        let session = fuser::spawn_mount(fs, at, &config)?;
        Ok(Mounted {
            backing: backing.to_path_buf(),
            at: at.to_path_buf(),
            session: Some(session),
            state,
        })
    }
}

/// Writes not yet synced: non-overlapping byte ranges by offset.
#[derive(Default)]
struct Dirty(BTreeMap<u64, Vec<u8>>);

impl Dirty {
    fn end(&self) -> u64 {
        self.0
            .last_key_value()
            .map_or(0, |(o, d)| o + d.len() as u64)
    }

    fn bytes(&self) -> u64 {
        self.0.values().map(|d| d.len() as u64).sum()
    }

    /// Every range overlapping `[from, to)`, as (offset, data).
    fn overlapping(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, &Vec<u8>)> {
        self.0
            .range(..to)
            .filter(move |(o, d)| *o + d.len() as u64 > from)
            .map(|(o, d)| (*o, d))
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        let hit: Vec<u64> = self.overlapping(offset, end).map(|(o, _)| o).collect();
        for o in hit {
            let d = self.0.remove(&o).unwrap();
            if o < offset {
                self.0.insert(o, d[..(offset - o) as usize].to_vec());
            }
            if o + d.len() as u64 > end {
                self.0.insert(end, d[(end - o) as usize..].to_vec());
            }
        }
        self.0.insert(offset, data.to_vec());
    }

    fn truncate(&mut self, size: u64) {
        self.0.retain(|o, _| *o < size);
        if let Some((o, d)) = self.0.iter_mut().next_back() {
            d.truncate((size - o).min(d.len() as u64) as usize);
        }
    }

    /// Lays the dirty data over `buf`, which holds the file from `offset`.
    fn overlay(&self, offset: u64, buf: &mut [u8]) {
        let end = offset + buf.len() as u64;
        for (o, d) in self.overlapping(offset, end) {
            let (from, to) = (o.max(offset), (o + d.len() as u64).min(end));
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&d[(from - o) as usize..(to - o) as usize]);
        }
    }
}

/// An inode: its path in the backing folder, the backing file while open, its dirty data.
struct Node {
    path: PathBuf,
    file: Option<File>,
    open: usize,
    linked: bool,
    dirty: Dirty,
}

struct State {
    nodes: HashMap<u64, Node>,
    inos: HashMap<PathBuf, u64>,
    next_ino: u64,
    /// Open directories: the entries read at `opendir`, as (inode, kind, name).
    dirs: HashMap<u64, Vec<(u64, FileType, OsString)>>,
    next_dir: u64,
}

impl State {
    fn new() -> State {
        let mut state = State {
            nodes: HashMap::new(),
            inos: HashMap::new(),
            next_ino: INodeNo::ROOT.0,
            dirs: HashMap::new(),
            next_dir: 1,
        };
        state.intern(PathBuf::new());
        state
    }

    /// The inode of a path, numbered on first sight (numbers are never reused).
    fn intern(&mut self, path: PathBuf) -> u64 {
        if let Some(ino) = self.inos.get(&path) {
            return *ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inos.insert(path.clone(), ino);
        let node = Node {
            path,
            file: None,
            open: 0,
            linked: true,
            dirty: Dirty::default(),
        };
        self.nodes.insert(ino, node);
        ino
    }

    fn node(&mut self, ino: INodeNo) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino.0).ok_or(Errno::ENOENT)
    }

    fn child(&mut self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.node(parent)?.path.join(name))
    }

    /// The path no longer names the inode; it goes when nothing has it open.
    fn unlink(&mut self, path: &Path) {
        let Some(ino) = self.inos.remove(path) else {
            return;
        };
        let node = self.nodes.get_mut(&ino).unwrap();
        node.linked = false;
        if node.open == 0 {
            self.nodes.remove(&ino);
        }
    }
}

fn io_err(e: io::Error) -> Errno {
    Errno::from(e)
}

impl LazyFs {
    fn full(&self, path: &Path) -> PathBuf {
        self.backing.join(path)
    }

    fn attr(&self, ino: u64, node: &Node) -> Result<FileAttr, Errno> {
        let meta = match (&node.file, node.linked) {
            (Some(file), false) => file.metadata(),
            _ => fs::symlink_metadata(self.full(&node.path)),
        }
        .map_err(io_err)?;
        let size = meta.len().max(node.dirty.end());
        let time = |s: i64, ns: i64| UNIX_EPOCH + Duration::new(s.max(0) as u64, ns as u32);
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: time(meta.mtime(), meta.mtime_nsec()),
            kind: FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile),
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Interns `path` and answers with its entry.
    fn entry(&self, state: &mut State, path: PathBuf) -> Result<FileAttr, Errno> {
        fs::symlink_metadata(self.full(&path)).map_err(io_err)?;
        let ino = state.intern(path);
        self.attr(ino, &state.nodes[&ino])
    }

    /// The backing file of an inode, opened read-write while the inode is open.
    fn backing_file<'a>(&self, node: &'a mut Node) -> Result<&'a File, Errno> {
        if node.file.is_none() {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.full(&node.path))
                .map_err(io_err)?;
            node.file = Some(file);
        }
        Ok(node.file.as_ref().unwrap())
    }

    fn do_setattr(
        &self,
        state: &mut State,
        ino: INodeNo,
        mode: Option<u32>,
        size: Option<u64>,
        times: (Option<TimeOrNow>, Option<TimeOrNow>),
    ) -> Result<FileAttr, Errno> {
        let node = state.node(ino)?;
        let path = self.full(&node.path);
        if let Some(mode) = mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io_err)?;
        }
        if let Some(size) = size {
            // A truncate is metadata: it reaches the backing file at once.
            self.backing_file(node)?.set_len(size).map_err(io_err)?;
            node.dirty.truncate(size);
            if node.open == 0 {
                node.file = None;
            }
        }
        if times.0.is_some() || times.1.is_some() {
            let at = |t: TimeOrNow| match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            };
            let mut set = fs::FileTimes::new();
            if let Some(t) = times.0 {
                set = set.set_accessed(at(t));
            }
            if let Some(t) = times.1 {
                set = set.set_modified(at(t));
            }
            File::open(&path)
                .and_then(|f| f.set_times(set))
                .map_err(io_err)?;
        }
        let node = state.node(ino)?;
        self.attr(ino.0, node)
    }

    fn do_open(&self, ino: INodeNo) -> Result<(), Errno> {
        let mut state = self.state.lock().unwrap();
        let node = state.node(ino)?;
        self.backing_file(node)?;
        node.open += 1;
        Ok(())
    }

    fn do_read(&self, ino: INodeNo, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let mut state = self.state.lock().unwrap();
        let node = state.node(ino)?;
        self.backing_file(node)?;
        let file = node.file.as_ref().unwrap();
        let logical = file.metadata().map_err(io_err)?.len().max(node.dirty.end());
        let len = logical.saturating_sub(offset).min(u64::from(size)) as usize;
        let mut buf = vec![0; len];
        let mut done = 0;
        while done < len {
            match file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break, // past the backing file's end: zeros, or dirty data
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        node.dirty.overlay(offset, &mut buf);
        Ok(buf)
    }

    /// `fsync`: the only way data reaches the backing file.
    fn do_fsync(&self, ino: INodeNo) -> Result<(), Errno> {
        let mut state = self.state.lock().unwrap();
        let node = state.node(ino)?;
        let dirty = std::mem::take(&mut node.dirty);
        let file = self.backing_file(node)?;
        for (offset, data) in &dirty.0 {
            file.write_all_at(data, *offset).map_err(io_err)?;
        }
        if node.open == 0 {
            node.file = None;
        }
        Ok(())
    }

    fn do_rename(&self, from: (INodeNo, &OsStr), to: (INodeNo, &OsStr)) -> Result<(), Errno> {
        let mut state = self.state.lock().unwrap();
        let (from, to) = (state.child(from.0, from.1)?, state.child(to.0, to.1)?);
        fs::rename(self.full(&from), self.full(&to)).map_err(io_err)?;
        state.unlink(&to);
        let moved: Vec<(PathBuf, u64)> = state
            .inos
            .iter()
            .filter(|(p, _)| p.starts_with(&from))
            .map(|(p, ino)| (p.clone(), *ino))
            .collect();
        for (old, ino) in moved {
            let rest = old.strip_prefix(&from).unwrap();
            let new = if rest.as_os_str().is_empty() {
                to.clone()
            } else {
                to.join(rest)
            };
            state.inos.remove(&old);
            state.nodes.get_mut(&ino).unwrap().path = new.clone();
            state.inos.insert(new, ino);
        }
        Ok(())
    }

    fn do_opendir(&self, ino: INodeNo) -> Result<u64, Errno> {
        let mut state = self.state.lock().unwrap();
        let path = state.node(ino)?.path.clone();
        let mut entries = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (ino.0, FileType::Directory, OsString::from("..")),
        ];
        for e in fs::read_dir(self.full(&path)).map_err(io_err)? {
            let e = e.map_err(io_err)?;
            let kind = e.file_type().map_err(io_err)?;
            let kind = FileType::from_std(kind).unwrap_or(FileType::RegularFile);
            let child = state.intern(path.join(e.file_name()));
            entries.push((child, kind, e.file_name()));
        }
        let fh = state.next_dir;
        state.next_dir += 1;
        state.dirs.insert(fh, entries);
        Ok(fh)
    }

    fn statvfs(&self) -> io::Result<libc::statvfs> {
        let path = CString::new(self.backing.as_os_str().as_bytes())?;
        // SAFETY: a valid C string and a zeroed plain C struct for the answer.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut s) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(s)
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut state = self.state.lock().unwrap();
        match state
            .child(parent, name)
            .and_then(|path| self.entry(&mut state, path))
        {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut state = self.state.lock().unwrap();
        match state.node(ino).and_then(|node| self.attr(ino.0, node)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.state.lock().unwrap();
        if uid.is_some() || gid.is_some() {
            let chown = state.node(ino).and_then(|n| {
                std::os::unix::fs::lchown(self.full(&n.path), uid, gid).map_err(io_err)
            });
            if let Err(e) = chown {
                return reply.error(e);
            }
        }
        match self.do_setattr(&mut state, ino, mode, size, (atime, mtime)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut state = self.state.lock().unwrap();
        let made = state.child(parent, name).and_then(|path| {
            fs::DirBuilder::new()
                .mode(mode & !umask)
                .create(self.full(&path))
                .map_err(io_err)?;
            self.entry(&mut state, path)
        });
        match made {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.state.lock().unwrap();
        let removed = state.child(parent, name).and_then(|path| {
            fs::remove_file(self.full(&path)).map_err(io_err)?;
            state.unlink(&path);
            Ok(())
        });
        match removed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.state.lock().unwrap();
        let removed = state.child(parent, name).and_then(|path| {
            fs::remove_dir(self.full(&path)).map_err(io_err)?;
            state.unlink(&path);
            Ok(())
        });
        match removed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        match self.do_rename((parent, name), (newparent, newname)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.do_open(ino) {
            Ok(()) => reply.opened(FileHandle(ino.0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state.lock().unwrap();
        let created = state.child(parent, name).and_then(|path| {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .create_new(flags & libc::O_EXCL != 0)
                .mode(mode & !umask)
                .open(self.full(&path))
                .map_err(io_err)?;
            let ino = state.intern(path);
            let node = state.nodes.get_mut(&ino).unwrap();
            if flags & libc::O_TRUNC != 0 {
                file.set_len(0).map_err(io_err)?;
                node.dirty = Dirty::default();
            }
            node.file = Some(file);
            node.open += 1;
            Ok((ino, self.attr(ino, node)?))
        });
        match created {
            Ok((ino, attr)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(ino),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.do_read(ino, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    /// Kept in memory only, until an fsync.
    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = self.state.lock().unwrap();
        match state.node(ino) {
            Ok(node) => {
                node.dirty.write(offset, data);
                reply.written(data.len() as u32)
            }
            Err(e) => reply.error(e),
        }
    }

    /// A close is not a sync: nothing is written.
    fn flush(&self, _req: &Request, _: INodeNo, _: FileHandle, _: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    /// The last close: the backing file is closed, the dirty data stays in memory.
    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state.lock().unwrap();
        if let Ok(node) = state.node(ino) {
            node.open = node.open.saturating_sub(1);
            if node.open == 0 {
                node.file = None;
                if !node.linked {
                    state.nodes.remove(&ino.0);
                }
            }
        }
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _: FileHandle, _: bool, reply: ReplyEmpty) {
        match self.do_fsync(ino) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.do_opendir(ino) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let state = self.state.lock().unwrap();
        let Some(entries) = state.dirs.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _: INodeNo,
        fh: FileHandle,
        _: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.state.lock().unwrap().dirs.remove(&fh.0);
        reply.ok();
    }

    /// Directory entries pass through at once: there is nothing left to sync.
    fn fsyncdir(&self, _req: &Request, _: INodeNo, _: FileHandle, _: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.statvfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(io_err(e)),
        }
    }

    fn access(&self, _req: &Request, _: INodeNo, _: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh layer in a temporary folder: (folder, mount, backing folder, mount point), or
    /// `None` (the test skips) where FUSE cannot be mounted.
    fn layer() -> Option<(tempfile::TempDir, Mounted, PathBuf, PathBuf)> {
        if let Err(why) = usable() {
            eprintln!("skipped: {why}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (backing, at) = (dir.path().join("backing"), dir.path().join("at"));
        let mounted = LazyFs::mount(&backing, &at).unwrap();
        Some((dir, mounted, backing, at))
    }

    #[test]
    fn an_unsynced_write_is_read_back_and_lost_in_a_cut() {
        let Some((_dir, fs, backing, at)) = layer() else {
            return;
        };
        fs::write(at.join("log"), b"hello").unwrap();
        assert_eq!(fs::read(at.join("log")).unwrap(), b"hello");
        assert_eq!(fs::metadata(at.join("log")).unwrap().len(), 5);
        assert_eq!(
            fs::read(backing.join("log")).unwrap(),
            b"",
            "a close is not a sync"
        );
        assert_eq!(fs.unsynced_bytes(), 5);
        let fs = fs.power_cut().unwrap();
        assert_eq!(
            fs::read(at.join("log")).unwrap(),
            b"",
            "the create was metadata"
        );
        fs.unmount().unwrap();
    }

    #[test]
    fn an_fsynced_write_survives_a_cut_and_what_follows_it_does_not() {
        let Some((_dir, fs, _backing, at)) = layer() else {
            return;
        };
        let f = File::create(at.join("db")).unwrap();
        f.write_all_at(b"0123456789", 0).unwrap();
        f.write_all_at(b"ab", 4).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b"XY", 8).unwrap();
        f.write_all_at(b"tail", 10).unwrap();
        assert_eq!(fs::read(at.join("db")).unwrap(), b"0123ab67XYtail");
        drop(f);
        let fs = fs.power_cut().unwrap();
        assert_eq!(fs::read(at.join("db")).unwrap(), b"0123ab6789");
        fs.unmount().unwrap();
    }

    #[test]
    fn a_renamed_unsynced_temp_file_comes_back_empty() {
        // What `write_secret` did for data/secret.key: write a temp file, rename it.
        let Some((_dir, fs, _backing, at)) = layer() else {
            return;
        };
        fs::create_dir(at.join("data")).unwrap();
        fs::write(at.join("data/secret.tmp"), "00ff\n").unwrap();
        fs::rename(at.join("data/secret.tmp"), at.join("data/secret.key")).unwrap();
        assert_eq!(
            fs::read_to_string(at.join("data/secret.key")).unwrap(),
            "00ff\n"
        );
        let fs = fs.power_cut().unwrap();
        assert!(!at.join("data/secret.tmp").exists());
        assert_eq!(fs::read_to_string(at.join("data/secret.key")).unwrap(), "");
        fs.unmount().unwrap();
    }

    #[test]
    fn truncate_passes_through_and_trims_the_unsynced_data() {
        let Some((_dir, fs, backing, at)) = layer() else {
            return;
        };
        let path = at.join("f");
        fs::write(&path, b"0123456789").unwrap();
        File::open(&path).unwrap().sync_all().unwrap();
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        io::Write::write_all(&mut f, b"abc").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"0123456789abc");
        f.set_len(11).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"0123456789a");
        f.set_len(4).unwrap();
        assert_eq!(fs::metadata(backing.join("f")).unwrap().len(), 4);
        drop(f);
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"XY", 2).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"01XY");
        drop(f);
        let fs = fs.power_cut().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"0123");
        fs.unmount().unwrap();
    }

    #[test]
    fn sync_file_range_is_not_a_sync() {
        // What sled 0.34 calls to make its log durable on Linux.
        let Some((_dir, fs, _backing, at)) = layer() else {
            return;
        };
        let f = File::create(at.join("db")).unwrap();
        f.write_all_at(b"acknowledged", 0).unwrap();
        use std::os::fd::AsRawFd;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: an open file descriptor.
        assert_eq!(
            unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 12, flags) },
            0
        );
        drop(f);
        let fs = fs.power_cut().unwrap();
        assert_eq!(fs::read(at.join("db")).unwrap(), b"");
        fs.unmount().unwrap();
    }

    #[test]
    fn directories_and_locks_work_through_the_layer() {
        let Some((_dir, fs, backing, at)) = layer() else {
            return;
        };
        fs::create_dir_all(at.join("a/b")).unwrap();
        fs::write(at.join("a/b/x.eml"), b"x").unwrap();
        fs::rename(at.join("a"), at.join("c")).unwrap();
        assert!(
            backing.join("c/b/x.eml").exists(),
            "a rename passes through at once"
        );
        assert_eq!(fs::read(at.join("c/b/x.eml")).unwrap(), b"x");
        let names: Vec<_> = fs::read_dir(at.join("c/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.eml"]);
        // sled takes an exclusive flock on its db file: a second one is refused.
        use std::os::fd::AsRawFd;
        let (one, two) = (
            File::create(at.join("lock")).unwrap(),
            File::open(at.join("lock")).unwrap(),
        );
        // SAFETY: open file descriptors.
        assert_eq!(
            unsafe { libc::flock(one.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            0
        );
        assert_eq!(
            unsafe { libc::flock(two.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            -1
        );
        drop((one, two));
        fs::remove_file(at.join("c/b/x.eml")).unwrap();
        fs::remove_dir(at.join("c/b")).unwrap();
        assert!(!backing.join("c/b").exists());
        assert!(statfs_works(&at));
        fs.unmount().unwrap();
    }

    fn statfs_works(at: &Path) -> bool {
        let path = CString::new(at.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string and a zeroed plain C struct for the answer.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        (unsafe { libc::statvfs(path.as_ptr(), &mut s) }) == 0 && s.f_blocks > 0
    }
}
