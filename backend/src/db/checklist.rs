//! The `checklist_ticks` table: the checklist items operators tick by hand,
//! with their note and when.

use sqlx::Row;

use super::pool::{Db, text_column};
use crate::clock::now_ms;

impl Db {
    /// Operators' ticks: item id → (ticked, note, at).
    pub async fn checklist_ticks(&self) -> Result<Vec<(String, bool, String, i64)>, sqlx::Error> {
        self.guarded(async move {
            let rows = sqlx::query("SELECT item_id, ticked, note, ticked_at_ms FROM checklist_ticks")
                .fetch_all(self.pool())
                .await?;
            rows.iter()
                .map(|r| {
                    let ticked = r.try_get::<i64, _>(1).or_else(|_| r.try_get::<i16, _>(1).map(i64::from))?;
                    Ok((r.try_get("item_id")?, ticked != 0, text_column(r, "note")?, r.try_get("ticked_at_ms")?))
                })
                .collect()
        })
        .await
    }

    pub async fn tick(&self, item: &str, ticked: bool, note: &str) -> Result<(), sqlx::Error> {
        self.guarded(async move {
            let mut tx = self.pool().begin().await?;
            sqlx::query("DELETE FROM checklist_ticks WHERE item_id = ?").bind(item).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO checklist_ticks (item_id, ticked, note, ticked_at_ms) VALUES (?, ?, ?, ?)")
                .bind(item)
                .bind(i64::from(ticked))
                .bind(note)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
        .await
    }
}
