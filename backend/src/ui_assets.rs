//! The admin UI's built files (`cargo xtask` writes them to
//! `target/admin-ui`); `routes::ui` serves them.
//!
//! `cargo xtask start` starts the sale first and builds the UI after, so the
//! files may appear while the backend runs: until a build is there, every
//! request for the UI looks again (one directory read, on admin pages only);
//! once one is found it is read into memory and kept for the process's life.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where the UI's files are, and them once a build was found there.
#[derive(Debug)]
pub struct UiAssets {
    dir: PathBuf,
    files: OnceLock<UiFiles>,
}

/// One build of the UI, read whole.
#[derive(Debug)]
pub struct UiFiles {
    files: HashMap<String, Vec<u8>>,
}

impl UiAssets {
    /// The UI built into `dir`, read now if it is there, else when first asked for.
    pub fn new(dir: &Path) -> Self {
        let assets = Self { dir: dir.to_path_buf(), files: OnceLock::new() };
        assets.files();
        assets
    }

    /// The build, if `dir` has one (an `index.html`) by now.
    pub fn files(&self) -> Option<&UiFiles> {
        if let Some(files) = self.files.get() {
            return Some(files);
        }
        let found = UiFiles::read(&self.dir)?;
        Some(self.files.get_or_init(|| found))
    }
}

impl UiFiles {
    /// Reads every file of `dir` (one level); `None` if there is no `index.html`.
    fn read(dir: &Path) -> Option<Self> {
        let mut files = HashMap::new();
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_file()
                && let (Some(name), Ok(bytes)) = (path.file_name().and_then(|n| n.to_str()), std::fs::read(&path))
            {
                files.insert(name.to_owned(), bytes);
            }
        }
        files.contains_key("index.html").then_some(Self { files })
    }

    /// The file called `name`, if the build made one.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_that_appears_later_is_served_and_then_kept() {
        let dir = std::env::temp_dir().join(format!("seckill-ui-assets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let assets = UiAssets::new(&dir);
        assert!(assets.files().is_none(), "no build yet");

        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app-1.js"), b"js").unwrap();
        assert!(assets.files().is_none(), "a build without index.html is not one");
        std::fs::write(dir.join("index.html"), b"<html>").unwrap();
        assert_eq!(assets.files().and_then(|f| f.get("app-1.js")), Some(&b"js"[..]));

        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(assets.files().and_then(|f| f.get("index.html")), Some(&b"<html>"[..]), "kept in memory");
    }
}
