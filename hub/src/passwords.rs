//! The embedded broker's credentials: a mosquitto password file.
//!
//! One file serves the embedded broker and an external mosquitto alike. Each
//! line is `user:$7$ITERATIONS$SALT$HASH` as Debian's `mosquitto_passwd`
//! (mosquitto 2) writes it: PBKDF2-HMAC-SHA512 of the password, salt and hash
//! in standard base64. Nothing here holds a plaintext password: a login is
//! hashed with the user's salt and compared in constant time. An unknown user
//! costs the same hashing as a known one, so timing does not tell them apart.
//!
//! Parsing never panics on the file; a bad line is a [`ConfigError`] naming
//! the file and the line.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::Sha512;
use std::collections::HashMap;
use subtle::ConstantTimeEq;
use wearline_models::config::ConfigError;

/// The most PBKDF2 iterations accepted: a login is hashed on the broker's
/// connection task, and mosquitto's default is 101.
const MAX_ITERATIONS: u32 = 1_000_000;

/// One user's salted hash.
#[derive(Clone)]
struct Entry {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// Users and their hashed passwords.
#[derive(Clone)]
pub struct PasswordFile {
    users: HashMap<String, Entry>,
    /// Hashed against when the user is unknown (equal cost).
    decoy: Entry,
}

impl std::fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordFile")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl PasswordFile {
    /// Parses the text of a password file; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<PasswordFile, ConfigError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |msg: String| {
                let mut e = ConfigError::invalid(origin, text, "", msg);
                e.line = Some(i + 1);
                e
            };
            let (user, hashed) = line
                .split_once(':')
                .ok_or_else(|| err("expected `user:$7$iterations$salt$hash`".into()))?;
            if user.is_empty() {
                return Err(err("empty user name".into()));
            }
            let entry = parse_hash(hashed).map_err(|m| err(format!("user `{user}`: {m}")))?;
            if users.insert(user.to_string(), entry).is_some() {
                return Err(err(format!("user `{user}` appears twice")));
            }
        }
        let iterations = users.values().map(|e| e.iterations).max().unwrap_or(101);
        let decoy = Entry {
            iterations,
            salt: vec![0; 12],
            hash: vec![0; 64],
        };
        Ok(PasswordFile { users, decoy })
    }

    /// Whether `password` is `user`'s.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(e) => e.matches(password),
            None => {
                let _ = self.decoy.matches(password);
                false
            }
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl Entry {
    fn matches(&self, password: &str) -> bool {
        let mut out = vec![0u8; self.hash.len()];
        pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &self.salt, self.iterations, &mut out);
        out.ct_eq(&self.hash).into()
    }
}

/// `$7$ITERATIONS$SALT$HASH` into an entry.
fn parse_hash(s: &str) -> Result<Entry, String> {
    let mut parts = s.split('$');
    let (Some(""), Some(kind)) = (parts.next(), parts.next()) else {
        return Err("expected a hash `$7$iterations$salt$hash`".into());
    };
    if kind != "7" {
        return Err(format!(
            "hash type `${kind}$` is not supported: only `$7$` (PBKDF2-SHA512, mosquitto 2's `mosquitto_passwd`)"
        ));
    }
    let (Some(iter), Some(salt), Some(hash), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected `$7$iterations$salt$hash`".into());
    };
    let iterations: u32 = iter
        .parse()
        .map_err(|_| format!("iterations `{iter}` is not a number"))?;
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(format!("iterations must be between 1 and {MAX_ITERATIONS}"));
    }
    let salt = STANDARD
        .decode(salt)
        .map_err(|e| format!("salt is not base64: {e}"))?;
    let hash = STANDARD
        .decode(hash)
        .map_err(|e| format!("hash is not base64: {e}"))?;
    if salt.is_empty() || hash.len() != 64 {
        return Err("expected a non-empty salt and a 64-byte SHA-512 hash".into());
    }
    Ok(Entry {
        iterations,
        salt,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by Debian's `mosquitto_passwd -b FILE gw1 s3cret` (mosquitto 2.0.11).
    const FROM_MOSQUITTO: &str = "gw1:$7$101$lHT+M8l4WF1+lBtb$lRvw+KU4wQez+G/UUdosarejKK3DfxrPLs57bKI+1ZmSwjjZKjl2MKSZmwJWf06RzBMI14PYmU0mt3iWGRNcPw==\n";

    #[test]
    fn a_mosquitto_password_file_verifies() {
        let f = PasswordFile::parse("passwd", FROM_MOSQUITTO).expect("parses");
        assert_eq!(f.len(), 1);
        assert!(f.verify("gw1", "s3cret"));
        assert!(!f.verify("gw1", "s3cret "));
        assert!(!f.verify("gw1", ""));
        assert!(!f.verify("gw2", "s3cret"));
    }

    #[track_caller]
    fn check_err(text: &str, expected: &str) {
        let e = PasswordFile::parse("passwd", text).expect_err("must be refused");
        assert_eq!(e.to_string(), expected);
    }

    #[test]
    fn bad_lines_name_their_line() {
        check_err(
            "# c\nnocolon\n",
            "passwd:2: expected `user:$7$iterations$salt$hash`",
        );
        check_err(
            "gw1:plain\n",
            "passwd:1: user `gw1`: expected a hash `$7$iterations$salt$hash`",
        );
        check_err(
            "gw1:$6$abc$def\n",
            "passwd:1: user `gw1`: hash type `$6$` is not supported: only `$7$` (PBKDF2-SHA512, mosquitto 2's `mosquitto_passwd`)",
        );
        check_err(
            "gw1:$7$x$AA==$AA==\n",
            "passwd:1: user `gw1`: iterations `x` is not a number",
        );
        check_err(
            "gw1:$7$101$AAAA$AAAA\n",
            "passwd:1: user `gw1`: expected a non-empty salt and a 64-byte SHA-512 hash",
        );
        let dup = format!("{}{}", FROM_MOSQUITTO, FROM_MOSQUITTO);
        check_err(&dup, "passwd:2: user `gw1` appears twice");
    }
}
