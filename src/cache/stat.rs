//! Content digests of files and directories, with a stat cache keyed by
//! (device, inode, size, mtime_ns, ctime_ns): re-checking an unchanged file costs a stat, not a
//! rehash. ctime is in the key because mtime can be set back (Bazel added it for that reason),
//! except for a file with more than one hard link: linking it anywhere else changes its ctime
//! but not its content, and the Python environments are hard links into uv's cache that every
//! later environment build (in this checkout or any other) links again.
//!
//! Directory digests leave out `__pycache__` directories: Python writes its bytecode there on
//! first import, so an environment (built without precompiled bytecode) changes on disk the first
//! time a process uses it, without a change to anything it runs.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Files at least this large are hashed memory-mapped on all cores.
const PARALLEL_THRESHOLD: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    /// `None` for a file with more than one hard link (see the module's documentation).
    ctime_ns: Option<i128>,
}

impl Fingerprint {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: (meta.nlink() <= 1)
                .then(|| i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stat: Fingerprint,
    digest: String,
}

/// The digest of a path's content, with what it covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// blake3, hex.
    pub digest: String,
    /// Number of files covered.
    pub files: u64,
    /// Bytes covered.
    pub bytes: u64,
}

/// A persistent stat cache (`.forge/stat-cache.json`).
#[derive(Debug, Default)]
pub struct StatCache {
    path: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, Entry>>,
    dirty: Mutex<bool>,
}

impl StatCache {
    /// Loads the cache at `path` (an unreadable or missing cache is an empty one).
    pub fn load(path: &Path) -> Self {
        let entries = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            path: Some(path.to_path_buf()),
            entries: Mutex::new(entries),
            dirty: Mutex::new(false),
        }
    }

    /// Writes the cache back if it changed (atomically).
    pub fn save(&self) -> io::Result<()> {
        let (Some(path), true) = (&self.path, *lock(&self.dirty)) else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&*lock(&self.entries)).map_err(io::Error::other)?;
        crate::fsutil::write_atomic(path, &bytes)?;
        *lock(&self.dirty) = false;
        Ok(())
    }

    /// Digest of an output: a file, a directory (recursively), or `None` when the path does not
    /// exist. A symbolic link the step wrote is recorded as the link (its target path).
    pub fn digest(&self, path: &Path) -> io::Result<Option<Digest>> {
        self.digest_with(path, Links::AsWritten)
    }

    /// Digest of an input: like [`digest`](Self::digest), but a symbolic link stands for its
    /// target, hashed by the target's content (a link whose target is missing is missing), and
    /// directory walks follow links, entering a directory that is its own ancestor once.
    pub fn input_digest(&self, path: &Path) -> io::Result<Option<Digest>> {
        self.digest_with(path, Links::Follow)
    }

    fn digest_with(&self, path: &Path, links: Links) -> io::Result<Option<Digest>> {
        let meta = match links.metadata(path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        if meta.is_dir() {
            return self.dir_digest(path, &meta, links).map(Some);
        }
        let (digest, bytes) = self.item_digest(path, Some(&meta))?;
        Ok(Some(Digest {
            digest,
            files: 1,
            bytes,
        }))
    }

    /// A file's digest and size; a link's (not followed) digest is that of its target path.
    fn item_digest(
        &self,
        path: &Path,
        meta: Option<&std::fs::Metadata>,
    ) -> io::Result<(String, u64)> {
        match meta {
            Some(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(path)?;
                let digest = blake3::hash(target.as_os_str().as_encoded_bytes());
                Ok((digest.to_hex().to_string(), 0))
            }
            Some(meta) => Ok((self.file_digest(path, meta)?, meta.size())),
            None => Ok((String::from("missing"), 0)),
        }
    }

    fn file_digest(&self, path: &Path, meta: &std::fs::Metadata) -> io::Result<String> {
        let stat = Fingerprint::of(meta);
        if let Some(entry) = lock(&self.entries).get(path)
            && entry.stat == stat
        {
            return Ok(entry.digest.clone());
        }
        let digest = hash_file(path, meta.size())?;
        lock(&self.entries).insert(
            path.to_path_buf(),
            Entry {
                stat,
                digest: digest.clone(),
            },
        );
        *lock(&self.dirty) = true;
        Ok(digest)
    }

    /// A Merkle digest over the sorted relative paths and digests of every file below `root`.
    /// Following links, a link to a directory is walked under the link's name, a directory that
    /// is its own ancestor (a link cycle) is entered once, and a dangling link counts as a file
    /// whose content is `missing`, so creating its target changes the digest.
    fn dir_digest(
        &self,
        root: &Path,
        meta: &std::fs::Metadata,
        links: Links,
    ) -> io::Result<Digest> {
        let mut listed = Vec::new();
        let mut ancestors = vec![(meta.dev(), meta.ino())];
        walk(root, links, &mut ancestors, &mut listed)?;
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut hasher = blake3::Hasher::new();
        let mut files = 0;
        let mut bytes = 0;
        for (path, meta) in listed {
            let (digest, size) = self.item_digest(&path, meta.as_ref())?;
            let relative = path.strip_prefix(root).unwrap_or(&path);
            hasher.update(relative.as_os_str().as_encoded_bytes());
            hasher.update(&[0]);
            hasher.update(digest.as_bytes());
            files += 1;
            bytes += size;
        }
        Ok(Digest {
            digest: hasher.finalize().to_hex().to_string(),
            files,
            bytes,
        })
    }
}

/// Whether symbolic links are followed (inputs) or recorded as written (outputs).
#[derive(Debug, Clone, Copy)]
enum Links {
    Follow,
    AsWritten,
}

impl Links {
    fn metadata(self, path: &Path) -> io::Result<std::fs::Metadata> {
        match self {
            Links::Follow => std::fs::metadata(path),
            Links::AsWritten => std::fs::symlink_metadata(path),
        }
    }
}

/// Lists the files below `dir` with their metadata (`None`: a dangling link being followed).
/// `ancestors` holds the (device, inode) of every directory on the way down.
fn walk(
    dir: &Path,
    links: Links,
    ancestors: &mut Vec<(u64, u64)>,
    listed: &mut Vec<(PathBuf, Option<std::fs::Metadata>)>,
) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = match links.metadata(&path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                listed.push((path, None));
                continue;
            }
            Err(err) => return Err(err),
        };
        if !meta.is_dir() {
            listed.push((path, Some(meta)));
            continue;
        }
        if path.file_name() == Some(std::ffi::OsStr::new("__pycache__")) {
            continue; // Python's bytecode cache: derived, and written whenever a module is imported
        }
        let id = (meta.dev(), meta.ino());
        if ancestors.contains(&id) {
            continue; // a link back up the tree: its content is already being hashed
        }
        ancestors.push(id);
        walk(&path, links, ancestors, listed)?;
        ancestors.pop();
    }
    Ok(())
}

/// blake3 of a file; large files are memory-mapped and hashed on all cores.
pub fn hash_file(path: &Path, size: u64) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    if size >= PARALLEL_THRESHOLD {
        hasher.update_mmap_rayon(path)?;
    } else {
        hasher.update_reader(std::fs::File::open(path)?)?;
    }
    Ok(hasher.finalize().to_hex().to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the map half-updated (single inserts).
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_digest_changes_with_content_and_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), "one").unwrap();
        let cache = StatCache::default();
        let first = cache.digest(dir.path()).unwrap().unwrap();
        assert_eq!(first.files, 1);
        std::fs::write(dir.path().join("sub/a"), "two").unwrap();
        let second = cache.digest(dir.path()).unwrap().unwrap();
        assert_ne!(first.digest, second.digest);
        std::fs::rename(dir.path().join("sub/a"), dir.path().join("sub/b")).unwrap();
        let third = cache.digest(dir.path()).unwrap().unwrap();
        assert_ne!(second.digest, third.digest);
        // Python's bytecode cache is not content: writing it leaves the digest alone.
        std::fs::create_dir(dir.path().join("sub/__pycache__")).unwrap();
        std::fs::write(dir.path().join("sub/__pycache__/b.cpython-311.pyc"), "pyc").unwrap();
        assert_eq!(cache.digest(dir.path()).unwrap().unwrap(), third);
        // A file of that name is content.
        std::fs::write(dir.path().join("__pycache__"), "a file").unwrap();
        assert_ne!(cache.digest(dir.path()).unwrap().unwrap(), third);
        assert!(cache.digest(&dir.path().join("missing")).unwrap().is_none());
    }

    #[test]
    fn links_are_hashed_by_their_targets_and_cycles_end() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::fs::write(root.join("real/sub/a"), "one").unwrap();
        std::fs::write(root.join("target.txt"), "v1").unwrap();
        std::os::unix::fs::symlink(root.join("target.txt"), root.join("link.txt")).unwrap();
        std::fs::create_dir(root.join("tree")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("tree/inner")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("real/sub/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("nowhere"), root.join("real/dangling")).unwrap();
        let cache = StatCache::default();
        let file = cache.input_digest(&root.join("link.txt")).unwrap().unwrap();
        assert_eq!(
            file,
            cache
                .input_digest(&root.join("target.txt"))
                .unwrap()
                .unwrap()
        );
        let written = cache.digest(&root.join("tree")).unwrap().unwrap();
        assert_eq!(written.files, 1, "an output's link is recorded as the link");
        let tree = cache.input_digest(&root.join("tree")).unwrap().unwrap();
        assert_eq!(
            tree.files, 2,
            "sub/a and the dangling link; the loop is entered once"
        );
        std::fs::write(root.join("target.txt"), "v2").unwrap();
        std::fs::write(root.join("real/sub/a"), "two").unwrap();
        assert_ne!(
            file,
            cache.input_digest(&root.join("link.txt")).unwrap().unwrap()
        );
        let edited = cache.input_digest(&root.join("tree")).unwrap().unwrap();
        assert_ne!(tree, edited);
        assert_eq!(written, cache.digest(&root.join("tree")).unwrap().unwrap());
        std::fs::write(root.join("nowhere"), "now here").unwrap();
        let created = cache.input_digest(&root.join("tree")).unwrap().unwrap();
        assert_eq!(created.files, 2);
        assert_ne!(created, edited);
        assert!(
            cache
                .input_digest(&root.join("real/dangling"))
                .unwrap()
                .is_some()
        );
        std::fs::remove_file(root.join("nowhere")).unwrap();
        assert!(
            cache
                .input_digest(&root.join("real/dangling"))
                .unwrap()
                .is_none()
        );
    }

    /// A file's digest as cached, with a marker digest planted in the cache: the marker comes
    /// back while the cache trusts the file's stat, the real digest once it rehashes.
    fn trusted(cache: &StatCache, file: &Path) -> bool {
        if let Some(entry) = lock(&cache.entries).get_mut(file) {
            entry.digest = String::from("planted");
        }
        cache.digest(file).unwrap().unwrap().digest == "planted"
    }

    #[test]
    fn a_new_hard_link_keeps_the_cache_but_a_changed_ctime_alone_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "data").unwrap();
        let cache = StatCache::default();
        cache.digest(&file).unwrap();
        assert!(trusted(&cache, &file), "an unchanged file is a stat");
        // The first extra link changes the fingerprint's form (ctime leaves it): one rehash.
        std::fs::hard_link(&file, dir.path().join("second")).unwrap();
        assert!(!trusted(&cache, &file));
        // Linking a file that already has links (as each environment build does with uv's
        // cache) changes its ctime only: still a stat.
        std::fs::hard_link(&file, dir.path().join("third")).unwrap();
        assert!(trusted(&cache, &file));
        // A single-link file whose ctime moves (its mode changed) is rehashed.
        let single = dir.path().join("single");
        std::fs::write(&single, "data").unwrap();
        cache.digest(&single).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut perms = std::fs::metadata(&single).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(&single, perms).unwrap();
        assert!(!trusted(&cache, &single));
        // Content written through any link changes mtime or size: rehashed.
        std::fs::write(dir.path().join("third"), "other data").unwrap();
        assert!(!trusted(&cache, &file));
        assert_eq!(
            cache.digest(&file).unwrap().unwrap(),
            cache.digest(&dir.path().join("second")).unwrap().unwrap()
        );
    }

    #[test]
    fn stat_cache_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "data").unwrap();
        let cache = StatCache::load(&dir.path().join("cache.json"));
        let digest = cache.digest(&file).unwrap().unwrap();
        cache.save().unwrap();
        let reloaded = StatCache::load(&dir.path().join("cache.json"));
        assert_eq!(lock(&reloaded.entries).len(), 1);
        assert_eq!(reloaded.digest(&file).unwrap().unwrap(), digest);
    }
}
