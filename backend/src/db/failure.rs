//! What a failed database call means: a passing outage to wait out, or data
//! the database will refuse forever; and MySQL's lock conflicts, retried at
//! once.

/// What a failed database call means for the order it was writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The database is down, busy, read-only, out of connections, shutting
    /// down or unreachable: the same write will succeed later, so wait.
    Transient,
    /// The database refused this data (a constraint, a value out of range):
    /// the same write will fail again however long we wait.
    Data,
}

/// Classifies a database error by its code, never by its message text.
///
/// Only an error the database proves is about the data is `Data`: for
/// MySQL/MariaDB, SQLSTATE classes 22 (data exception) and 23 (integrity
/// constraint violation); for SQLite, `SQLITE_CONSTRAINT`, `SQLITE_MISMATCH`
/// and `SQLITE_TOOBIG`. Everything else — read-only (1290), too many
/// connections (1040), shutdown in progress (1053), query interrupted (1317),
/// "unable to open database file", I/O errors, pool timeouts, and codes not
/// known here — is `Transient`: burying a good order because the database
/// blinked loses a sale, while waiting on a truly broken one only delays it.
pub fn classify(err: &sqlx::Error) -> Failure {
    match err {
        sqlx::Error::Database(db) => {
            if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                return mysql_failure(mysql.code(), mysql.number());
            }
            match db.code().and_then(|c| c.parse::<i32>().ok()) {
                Some(code) => sqlite_failure(code),
                None => Failure::Transient,
            }
        }
        // A value the driver could not put on the wire is the data's fault too.
        sqlx::Error::Encode(_) => Failure::Data,
        _ => Failure::Transient,
    }
}

/// MySQL/MariaDB: by SQLSTATE class, and by number where a server sends a generic SQLSTATE.
fn mysql_failure(sqlstate: Option<&str>, number: u16) -> Failure {
    // 1048 NULL in a NOT NULL column, 1062 duplicate key, 1264 out of range, 1265 truncated,
    // 1292/1366 incorrect value, 1406 too long, 1451/1452 foreign key, 3819/4025 CHECK failed.
    const DATA_ERRORS: [u16; 11] = [1048, 1062, 1264, 1265, 1292, 1366, 1406, 1451, 1452, 3819, 4025];
    let data_class = sqlstate.is_some_and(|s| s.starts_with("22") || s.starts_with("23"));
    if data_class || DATA_ERRORS.contains(&number) { Failure::Data } else { Failure::Transient }
}

/// SQLite: by primary result code (the low byte of the extended code sqlx reports).
fn sqlite_failure(extended_code: i32) -> Failure {
    const SQLITE_TOOBIG: i32 = 18;
    const SQLITE_CONSTRAINT: i32 = 19;
    const SQLITE_MISMATCH: i32 = 20;
    match extended_code & 0xff {
        SQLITE_TOOBIG | SQLITE_CONSTRAINT | SQLITE_MISMATCH => Failure::Data,
        _ => Failure::Transient,
    }
}

/// Whether MySQL chose this statement as a deadlock victim (1213, SQLSTATE
/// 40001) or its lock wait timed out (1205): the transaction is to be retried
/// at once, before it is reported as a failure at all.
pub fn is_lock_conflict(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else { return false };
    let number = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|e| e.number());
    db.code().as_deref() == Some("40001") || matches!(number, Some(1205 | 1213))
}

/// Runs `op` again (up to 4 more times, backing off) while MySQL reports a lock conflict.
pub(super) async fn retry_on_lock_conflict<T, F, Fut>(mut op: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 0u32;
    loop {
        match op().await {
            Err(e) if attempt < 4 && is_lock_conflict(&e) => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_transient_and_only_proven_data_errors_are_not() {
        // The server's answers during a failover, an overload, a restart and a KILL QUERY.
        for (sqlstate, number) in [("HY000", 1290), ("08004", 1040), ("08S01", 1053), ("70100", 1317), ("HY000", 1205)]
        {
            assert_eq!(mysql_failure(Some(sqlstate), number), Failure::Transient, "{number}");
        }
        assert_eq!(mysql_failure(None, 9999), Failure::Transient, "an unknown code waits");
        for (sqlstate, number) in [("23000", 1048), ("22003", 1264), ("22001", 1406), ("23000", 1452), ("HY000", 4025)]
        {
            assert_eq!(mysql_failure(Some(sqlstate), number), Failure::Data, "{number}");
        }
        // SQLite: busy, locked, read-only, I/O error, "unable to open database file", disk full.
        for code in [5, 6, 8, 10, 14, 13, 1034] {
            assert_eq!(sqlite_failure(code), Failure::Transient, "{code}");
        }
        // Constraint (and its extended codes: NOT NULL, UNIQUE, CHECK), type mismatch, too big.
        for code in [19, 1299, 2067, 275, 20, 18] {
            assert_eq!(sqlite_failure(code), Failure::Data, "{code}");
        }
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Failure::Transient);
        assert_eq!(classify(&sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into())), Failure::Transient);
    }
}
