//! API access in the store: customers, who owns which device (and how
//! critical it is), the API's bearer tokens, and the lists a caller's
//! [`Scope`] allows.
//!
//! A token is kept only as its SHA-256 (`auth::hash`); the store never
//! sees the token itself. A revoked token keeps its row (`revoked_ms`), so
//! its name stays in the record and its hash can never come back.

use super::{AlertRow, DeviceRow, Result, Store, StoreError};
use crate::policy::{Access, Caller, Role, Scope};
use serde::Serialize;
use sqlx::{AssertSqlSafe, FromRow};
use wearline_models::workorder::Criticality;

/// A customer of the service provider.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct CustomerRow {
    pub id: i64,
    pub name: String,
    /// The person to call or write to.
    pub contact: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub created_ms: i64,
}

/// A customer to add.
#[derive(Debug, Clone, Default)]
pub struct NewCustomer<'a> {
    pub name: &'a str,
    pub contact: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub created_ms: i64,
}

/// An API token as stored (its hash is not read back).
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub customer_id: Option<i64>,
    pub technician: Option<String>,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// A token to record.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub name: &'a str,
    /// `Admin` and `Manager` only, or a technician's or customer's access.
    pub access: &'a Access,
    /// SHA-256 of the token, lowercase hex.
    pub hash: &'a str,
    pub created_ms: i64,
}

/// Why an access change was not made.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("a customer named `{0}` already exists")]
    CustomerExists(String),
    #[error("no customer `{0}`")]
    NoCustomer(String),
    #[error("no device `{0}` (a device is known from its first telemetry)")]
    NoDevice(String),
    #[error("an active token named `{0}` already exists; revoke it first or pick another name")]
    TokenExists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AccessError {
    fn from(e: sqlx::Error) -> Self {
        AccessError::Store(StoreError::Db(e))
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn criticality_str(c: Criticality) -> &'static str {
    match c {
        Criticality::Low => "low",
        Criticality::Normal => "normal",
        Criticality::High => "high",
    }
}

/// ` AND {column} IN (…)`: the devices in `scope`, with its parameter
/// numbered `n`; empty for [`Scope::All`].
pub(super) fn device_scope_clause(scope: &Scope, column: &str, n: usize) -> String {
    match scope {
        Scope::All => String::new(),
        Scope::Customer(_) => format!(" AND {column} IN (SELECT id FROM devices WHERE customer_id = ${n})"),
        Scope::Assignee(_) => {
            format!(" AND {column} IN (SELECT device_id FROM work_orders WHERE assignee = ${n})")
        }
    }
}

/// Binds the parameter of a scope clause, if it has one.
pub(super) fn bind_scope<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>,
    scope: &'q Scope,
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    match scope {
        Scope::All => q,
        Scope::Customer(c) => q.bind(*c),
        Scope::Assignee(t) => q.bind(t.as_str()),
    }
}

impl Store {
    /// Adds a customer; names are unique.
    pub async fn add_customer(&self, c: &NewCustomer<'_>) -> Result<CustomerRow, AccessError> {
        self.query_as(
            "INSERT INTO customers (name, contact, email, phone, created_ms)
             VALUES ($1, $2, $3, $4, $5) RETURNING *",
        )
        .bind(c.name)
        .bind(c.contact)
        .bind(c.email)
        .bind(c.phone)
        .bind(c.created_ms)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                AccessError::CustomerExists(c.name.to_string())
            } else {
                e.into()
            }
        })
    }

    /// Every customer, by name.
    pub async fn customers(&self) -> Result<Vec<CustomerRow>> {
        Ok(self
            .query_as("SELECT * FROM customers ORDER BY name")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn customer_by_name(&self, name: &str) -> Result<Option<CustomerRow>> {
        Ok(self
            .query_as("SELECT * FROM customers WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Gives `device` to a customer (by name), or to none.
    pub async fn set_device_owner(&self, device: &str, customer: Option<&str>) -> Result<(), AccessError> {
        let customer_id = match customer {
            Some(name) => Some(
                self.customer_by_name(name)
                    .await?
                    .ok_or_else(|| AccessError::NoCustomer(name.to_string()))?
                    .id,
            ),
            None => None,
        };
        let done = self
            .query("UPDATE devices SET customer_id = $1 WHERE id = $2")
            .bind(customer_id)
            .bind(device)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(AccessError::NoDevice(device.to_string()));
        }
        Ok(())
    }

    /// Sets how critical `device` is (its work orders' priority follows).
    pub async fn set_device_criticality(&self, device: &str, c: Criticality) -> Result<(), AccessError> {
        let done = self
            .query("UPDATE devices SET criticality = $1 WHERE id = $2")
            .bind(criticality_str(c))
            .bind(device)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(AccessError::NoDevice(device.to_string()));
        }
        Ok(())
    }

    /// Records a new token. Names are unique among active tokens.
    pub async fn create_token(&self, t: &NewToken<'_>) -> Result<TokenRow, AccessError> {
        let (customer_id, technician) = match t.access {
            Access::Customer(c) => (Some(*c), None),
            Access::Technician(name) => (None, Some(name.as_str())),
            Access::Admin | Access::Manager => (None, None),
        };
        let role = match t.access {
            Access::Admin => Role::Admin,
            Access::Manager => Role::Manager,
            Access::Technician(_) => Role::Technician,
            Access::Customer(_) => Role::Customer,
        };
        self.query_as(
            "INSERT INTO api_tokens (name, role, customer_id, technician, hash, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, name, role, customer_id, technician, created_ms, revoked_ms",
        )
        .bind(t.name)
        .bind(role.as_str())
        .bind(customer_id)
        .bind(technician)
        .bind(t.hash)
        .bind(t.created_ms)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                AccessError::TokenExists(t.name.to_string())
            } else {
                e.into()
            }
        })
    }

    /// Makes sure the token with `hash` is known, as an admin token named
    /// `name` (the hub's bootstrap token). A token already known by its
    /// hash is left as it is, revoked or not; otherwise an active token of
    /// the same name is revoked (the file changed) and this one recorded.
    /// Whether it was recorded now.
    pub async fn ensure_admin_token(&self, name: &str, hash: &str, at_ms: i64) -> Result<bool> {
        let known: Option<(i64,)> = self
            .query_as("SELECT id FROM api_tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        if known.is_some() {
            return Ok(false);
        }
        let mut tx = self.writer.begin().await?;
        self.query("UPDATE api_tokens SET revoked_ms = $1 WHERE name = $2 AND revoked_ms IS NULL")
            .bind(at_ms)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let inserted = self
            .query("INSERT INTO api_tokens (name, role, hash, created_ms) VALUES ($1, 'admin', $2, $3)")
            .bind(name)
            .bind(hash)
            .bind(at_ms)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(true)
            }
            // Another hub of a shared store recorded it first.
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every token, active or revoked, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>> {
        Ok(self.query_as(
            "SELECT id, name, role, customer_id, technician, created_ms, revoked_ms FROM api_tokens ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes the active token named `name`; whether there was one.
    pub async fn revoke_token(&self, name: &str, at_ms: i64) -> Result<bool> {
        let done = self
            .query("UPDATE api_tokens SET revoked_ms = $1 WHERE name = $2 AND revoked_ms IS NULL")
            .bind(at_ms)
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The caller holding the active token with this hash, if any.
    pub async fn caller(&self, hash: &str) -> Result<Option<Caller>> {
        let row: Option<(String, String, Option<i64>, Option<String>)> = self.query_as(
            "SELECT name, role, customer_id, technician FROM api_tokens WHERE hash = $1 AND revoked_ms IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(name, role, customer, technician)| {
            let access = match (Role::parse(&role)?, customer, technician) {
                (Role::Admin, _, _) => Access::Admin,
                (Role::Manager, _, _) => Access::Manager,
                (Role::Technician, _, Some(t)) => Access::Technician(t),
                (Role::Customer, Some(c), _) => Access::Customer(c),
                // Ruled out by the table's checks.
                _ => return None,
            };
            Some(Caller { name, access })
        }))
    }

    /// The assignees of a device's work orders (who may see it as technicians).
    pub async fn device_assignees(&self, device: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = self
            .query_as(
                "SELECT DISTINCT assignee FROM work_orders WHERE device_id = $1 AND assignee IS NOT NULL",
            )
            .bind(device)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    /// The devices in `scope`, by id.
    pub async fn devices_in(&self, scope: &Scope) -> Result<Vec<DeviceRow>> {
        let sql = format!(
            "SELECT * FROM devices WHERE 1 = 1{} ORDER BY id",
            device_scope_clause(scope, "id", 1)
        );
        let q = self.query_as(AssertSqlSafe(sql));
        Ok(bind_scope(q, scope).fetch_all(&self.pool).await?)
    }

    /// Alerts of the devices in `scope`, newest first; only the open ones
    /// with `open_only`.
    pub async fn alerts_in(&self, open_only: bool, scope: &Scope) -> Result<Vec<AlertRow>> {
        let sql = format!(
            "SELECT * FROM alerts WHERE {}{} ORDER BY id DESC",
            if open_only { "state = 'open'" } else { "1 = 1" },
            device_scope_clause(scope, "device_id", 1)
        );
        let q = self.query_as(AssertSqlSafe(sql));
        Ok(bind_scope(q, scope).fetch_all(&self.pool).await?)
    }
}
