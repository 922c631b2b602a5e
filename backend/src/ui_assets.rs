//! The admin UI's built files (`cargo xtask` writes them to
//! `target/admin-ui`), read into memory once at start-up; `routes::ui`
//! serves them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The UI's files, read once at start-up.
#[derive(Debug, Default)]
pub struct UiAssets {
    files: HashMap<String, Vec<u8>>,
}

impl UiAssets {
    /// Reads every file of `dir` (one level); `None` if there is no `index.html`.
    pub fn load(dir: &Path) -> Option<Arc<Self>> {
        let mut files = HashMap::new();
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_file()
                && let (Some(name), Ok(bytes)) = (path.file_name().and_then(|n| n.to_str()), std::fs::read(&path))
            {
                files.insert(name.to_owned(), bytes);
            }
        }
        files.contains_key("index.html").then(|| Arc::new(Self { files }))
    }

    /// The file called `name`, if the build made one.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }
}
