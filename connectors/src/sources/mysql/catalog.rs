//! Connections, server checks and table schemas from `information_schema`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, OptsBuilder, Row, SslOpts};
use sluice_api::ConnectError;

use super::config::{MySqlConfig, SslMode};
use super::schema::{Column, ColumnKind, Table};

/// The TLS settings of `database.ssl.mode`, `.truststore` and `.keystore`; `None` for plain.
fn ssl_opts(config: &MySqlConfig) -> Option<SslOpts> {
    if config.ssl_mode == SslMode::Disabled {
        return None;
    }
    // mysql_async builds its TLS config with rustls' process-wide provider; the build links more
    // than one (other crates bring aws-lc-rs), so name ring, the one sluice uses everywhere.
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let mut ssl = SslOpts::default();
    if let Some(ca) = &config.ssl_truststore {
        ssl = ssl.with_root_certs(vec![PathBuf::from(ca).into()]).with_disable_built_in_roots(true);
    }
    if let Some(pem) = &config.ssl_keystore {
        // One PEM file holds the key and the chain; each side takes its own items from it.
        ssl = ssl.with_client_identity(Some(ClientIdentity::new(PathBuf::from(pem).into(), PathBuf::from(pem).into())));
    }
    match config.ssl_mode {
        SslMode::Disabled => None,
        SslMode::Preferred | SslMode::Required => {
            Some(ssl.with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true))
        }
        SslMode::VerifyCa => Some(ssl.with_danger_skip_domain_validation(true)),
        SslMode::VerifyIdentity => Some(ssl),
    }
}

/// Opens a connection (TLS as `database.ssl.mode` says; `preferred` falls back to a plain
/// connection only when the server offers no TLS).
pub async fn connect(config: &MySqlConfig) -> Result<Conn, ConnectError> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(config.hostname.clone())
        .tcp_port(config.port)
        .user(Some(config.user.clone()))
        .pass(Some(config.password.clone()))
        .prefer_socket(false);
    let ssl = ssl_opts(config);
    let timeout = Duration::from_millis(config.connect_timeout_ms);
    let where_ = format!("{}@{}:{}", config.user, config.hostname, config.port);
    let attempt = |ssl: Option<SslOpts>| tokio::time::timeout(timeout, Conn::new(opts.clone().ssl_opts(ssl)));
    let mut result = attempt(ssl.clone()).await;
    let no_tls = |r: &Result<Result<Conn, mysql_async::Error>, _>| {
        matches!(r, Ok(Err(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer))))
    };
    if no_tls(&result) {
        if config.ssl_mode == SslMode::Preferred {
            result = attempt(None).await;
        } else {
            return Err(ConnectError::fatal(format!(
                "MySQL at {where_} offers no TLS, but database.ssl.mode is {:?}: enable TLS on the server (ssl_cert, ssl_key) or lower database.ssl.mode",
                config.ssl_mode
            )));
        }
    }
    match result {
        Err(_) => Err(ConnectError::retriable(format!("connecting to MySQL at {where_} timed out after {timeout:?}"))),
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(mysql_async::Error::Server(e))) if e.code == 1045 => {
            Err(ConnectError::fatal(format!("MySQL at {where_} rejected the credentials: {}", e.message)))
        }
        Ok(Err(e)) if ssl.is_some() && is_tls_failure(&e) => Err(ConnectError::fatal(format!(
            "TLS to MySQL at {where_} failed ({e}); check database.ssl.truststore (the CA of the server's certificate), \
             database.ssl.keystore, and database.ssl.mode (verify_identity also checks the host name)"
        ))),
        Ok(Err(e)) => Err(ConnectError::retriable_from(format!("cannot connect to MySQL at {where_}: {e}"), e)),
    }
}

/// A TLS handshake or certificate failure, which retrying cannot fix.
fn is_tls_failure(e: &mysql_async::Error) -> bool {
    if matches!(e, mysql_async::Error::Io(mysql_async::IoError::Tls(_))) {
        return true;
    }
    let text = format!("{e:?}");
    ["InvalidCertificate", "certificate", "UnknownIssuer", "AlertReceived", "NotValidForName"]
        .iter()
        .any(|needle| text.contains(needle))
}

/// Maps a driver error: server-side errors that retrying cannot fix are fatal.
pub fn db_error(context: &str, e: mysql_async::Error) -> ConnectError {
    match &e {
        mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1045 | 1142 | 1227 | 1236 | 1146 | 1049) => {
            ConnectError::fatal(format!("{context}: {} (MySQL error {})", s.message, s.code))
        }
        _ => ConnectError::retriable_from(format!("{context}: {e}"), e),
    }
}

/// What the server is.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// MariaDB rather than MySQL.
    pub mariadb: bool,
    /// `VERSION()`.
    pub version: String,
}

/// A global server variable.
pub async fn variable(conn: &mut Conn, name: &str) -> Result<Option<String>, ConnectError> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW GLOBAL VARIABLES LIKE {}", quote_literal(name)))
        .await
        .map_err(|e| db_error(&format!("reading the server variable {name}"), e))?;
    Ok(row.map(|(_, v)| v))
}

/// Checks what binlog CDC needs and fails with the reason: binlog on, `binlog_format=ROW`,
/// `binlog_row_image=FULL`, no compressed binlog, and replication privileges.
pub async fn check_server(conn: &mut Conn, config: &MySqlConfig) -> Result<ServerInfo, ConnectError> {
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| db_error("reading the server version", e))?
        .unwrap_or_default();
    let info = ServerInfo { mariadb: version.to_ascii_lowercase().contains("mariadb"), version };
    let fail = |m: String| Err(ConnectError::fatal(m));
    match variable(conn, "log_bin").await?.as_deref() {
        Some(v) if v.eq_ignore_ascii_case("ON") || v == "1" => {}
        other => {
            return fail(format!(
                "the binary log is off on the server (log_bin={}); start it with --log-bin",
                other.unwrap_or("?")
            ))
        }
    }
    match variable(conn, "binlog_format").await?.as_deref() {
        Some(v) if v.eq_ignore_ascii_case("ROW") => {}
        other => {
            return fail(format!(
                "binlog_format is {}, but CDC needs ROW: SET GLOBAL binlog_format=ROW",
                other.unwrap_or("unset")
            ))
        }
    }
    match variable(conn, "binlog_row_image").await?.as_deref() {
        Some(v) if v.eq_ignore_ascii_case("FULL") => {}
        None => {}
        Some(other) => {
            return fail(format!("binlog_row_image is {other}, but CDC needs FULL: SET GLOBAL binlog_row_image=FULL"))
        }
    }
    if let Some(v) = variable(conn, "log_bin_compress").await? {
        if v.eq_ignore_ascii_case("ON") {
            return fail(
                "log_bin_compress is ON; compressed binlog events cannot be read: SET GLOBAL log_bin_compress=OFF"
                    .into(),
            );
        }
    }
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.map_err(|e| db_error("reading the user's grants", e))?;
    let grants = grants.join(" ").to_ascii_uppercase();
    let all = grants.contains("ALL PRIVILEGES ON *.*");
    for needed in ["REPLICATION SLAVE", "REPLICATION CLIENT"] {
        let mariadb_name = if needed == "REPLICATION CLIENT" { "BINLOG MONITOR" } else { needed };
        if !all && !grants.contains(needed) && !grants.contains(mariadb_name) {
            return fail(format!(
                "user '{}' lacks the {needed} privilege: GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{}'",
                config.user, config.user
            ));
        }
    }
    Ok(info)
}

/// The binlog files on the server, oldest first.
pub async fn binlog_files(conn: &mut Conn) -> Result<Vec<String>, ConnectError> {
    let rows: Vec<Row> = conn.query("SHOW BINARY LOGS").await.map_err(|e| db_error("listing binary logs", e))?;
    Ok(rows.into_iter().filter_map(|mut r| r.take::<String, _>(0)).collect())
}

/// Captured tables, sorted by `db.table`.
pub async fn captured_tables(conn: &mut Conn, config: &MySqlConfig) -> Result<Vec<(String, String)>, ConnectError> {
    let rows: Vec<(String, String)> = conn
        .query("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'")
        .await
        .map_err(|e| db_error("listing tables", e))?;
    let mut tables: Vec<_> = rows.into_iter().filter(|(db, t)| config.captures_table(db, t)).collect();
    tables.sort_by(|a, b| format!("{}.{}", a.0, a.1).cmp(&format!("{}.{}", b.0, b.1)));
    Ok(tables)
}

type ColumnRow = (String, String, String, String, Option<u64>, Option<u64>, Option<u64>, Option<String>);

/// Reads one table's columns and primary key; `None` when it does not exist.
pub async fn load_table(
    conn: &mut Conn,
    config: &MySqlConfig,
    db: &str,
    name: &str,
) -> Result<Option<Table>, ConnectError> {
    let ctx = format!("reading the schema of {db}.{name}");
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE, \
             DATETIME_PRECISION, CHARACTER_SET_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, name),
        )
        .await
        .map_err(|e| db_error(&ctx, e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let columns: Vec<Column> = rows
        .into_iter()
        .map(|(col, data_type, column_type, nullable, precision, scale, dt_precision, charset)| Column {
            captured: config.captures_column(db, name, &col),
            kind: ColumnKind::from_information_schema(
                &data_type,
                &column_type,
                precision,
                scale,
                dt_precision,
                charset.as_deref(),
            ),
            nullable: nullable.eq_ignore_ascii_case("YES"),
            name: col,
        })
        .collect();
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (db, name),
        )
        .await
        .map_err(|e| db_error(&ctx, e))?;
    let primary_key = pk.iter().filter_map(|k| columns.iter().position(|c| &c.name == k)).collect();
    Ok(Some(Table::new(db, name, columns, primary_key, config)))
}

/// `SHOW CREATE TABLE`'s statement.
pub async fn show_create_table(conn: &mut Conn, db: &str, name: &str) -> Result<String, ConnectError> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE TABLE {}.{}", quote_ident(db), quote_ident(name)))
        .await
        .map_err(|e| db_error(&format!("SHOW CREATE TABLE {db}.{name}"), e))?;
    Ok(row.map(|(_, ddl)| ddl).unwrap_or_default())
}

/// Table schemas by `(db, table)`, loaded on first use and dropped when DDL touches them.
#[derive(Default)]
pub struct Catalog {
    tables: HashMap<(String, String), Option<Arc<Table>>>,
}

impl Catalog {
    /// The schema of a captured table (cached).
    pub async fn get(
        &mut self,
        conn: &mut Conn,
        config: &MySqlConfig,
        db: &str,
        name: &str,
    ) -> Result<Option<Arc<Table>>, ConnectError> {
        let key = (db.to_string(), name.to_string());
        if let Some(t) = self.tables.get(&key) {
            return Ok(t.clone());
        }
        let table = load_table(conn, config, db, name).await?.map(Arc::new);
        self.tables.insert(key, table.clone());
        Ok(table)
    }

    /// Forgets every cached schema (after DDL).
    pub fn invalidate(&mut self) {
        self.tables.clear();
    }

    /// Seeds the cache (the snapshot read these already).
    pub fn insert(&mut self, table: Arc<Table>) {
        self.tables.insert((table.db.clone(), table.name.clone()), Some(table));
    }

    /// Forgets one table (it is read again on next use).
    pub fn forget(&mut self, db: &str, name: &str) {
        self.tables.remove(&(db.to_string(), name.to_string()));
    }

    /// Whether a definition of the table is held.
    pub fn contains(&self, db: &str, name: &str) -> bool {
        self.tables.get(&(db.to_string(), name.to_string())).is_some_and(Option::is_some)
    }

    /// The tables held of one database.
    pub fn tables_of(&self, db: &str) -> Vec<(String, String)> {
        self.tables.iter().filter(|((d, _), t)| d == db && t.is_some()).map(|(k, _)| k.clone()).collect()
    }
}

/// A SQL identifier in backquotes.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal (the session has NO_BACKSLASH_ESCAPES removed).
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}
