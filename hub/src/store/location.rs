//! Where the store lives: an SQLite file (the default) or a PostgreSQL
//! server named by a URL. Shown without the URL's password.

use super::{Result, StoreError};
use std::fmt;
use std::path::PathBuf;

/// The database engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// An SQLite file, or a `postgres://` URL.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    pub fn backend(&self) -> Backend {
        match self {
            Location::Sqlite(_) => Backend::Sqlite,
            Location::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL sqlx connects to. For SQLite, creates the file's directory
    /// and asks for the file to be created (`mode=rwc`); the path is made
    /// absolute and percent-encoded, so any file name works.
    pub(super) fn url(&self) -> Result<String> {
        match self {
            Location::Postgres(url) => Ok(url.clone()),
            Location::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                let abs = std::path::absolute(path).map_err(|source| StoreError::Dir {
                    path: path.display().to_string(),
                    source,
                })?;
                let file = url::Url::from_file_path(&abs)
                    .map_err(|()| StoreError::Path(abs.display().to_string()))?;
                Ok(format!("sqlite://{}?mode=rwc", file.path()))
            }
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        // Only fails for URLs that cannot have a password.
                        let _ = u.set_password(Some("***"));
                    }
                    write!(f, "{u}")
                }
                Err(_) => f.write_str("postgres://(invalid URL)"),
            },
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_hides_the_password() {
        let l = Location::Postgres("postgres://hub:s3cret@db.example:5432/wearline".into());
        let shown = format!("{l} {l:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("hub:***@db.example:5432/wearline"), "{shown}");
    }

    #[test]
    fn sqlite_urls_are_absolute_and_encoded() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| StoreError::Dir {
            path: "tmp".into(),
            source,
        })?;
        let l = Location::Sqlite(dir.path().join("odd name #1/hub?.db"));
        let url = l.url()?;
        assert!(url.starts_with("sqlite:///"), "{url}");
        assert!(url.ends_with("/odd%20name%20%231/hub%3F.db?mode=rwc"), "{url}");
        assert!(dir.path().join("odd name #1").is_dir(), "directory created");
        Ok(())
    }
}
