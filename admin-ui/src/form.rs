//! The activity form: what the operator typed, checked field by field before
//! anything is sent (stock ≥ 0, limit ≥ 1, end after start, …), with each
//! error named by its field so the view shows it next to that field.

use seckill_api::limits::{MAX_LIMIT_PER_USER, MAX_NAME_CHARS, MAX_STOCK};
use seckill_api::{Activity, NewActivity};
use serde_json::{Map, Value};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::format;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Name,
    Price,
    Stock,
    Limit,
    Start,
    End,
}

impl Field {
    pub const ALL: [Field; 6] = [Field::Name, Field::Price, Field::Stock, Field::Limit, Field::Start, Field::End];

    /// The field's name on the wire (and at the start of the backend's `bad_request` messages).
    pub fn wire(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Price => "price_cents",
            Field::Stock => "total_stock",
            Field::Limit => "limit_per_user",
            Field::Start => "starts_at",
            Field::End => "ends_at",
        }
    }

    /// The field a backend message such as `ends_at: must be after starts_at` is about.
    pub fn from_message(message: &str) -> Option<Field> {
        let (head, _) = message.split_once(':')?;
        Field::ALL.into_iter().find(|f| f.wire() == head.trim())
    }
}

/// The form's raw text, as the inputs hold it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityForm {
    pub name: String,
    /// In yuan: `12.34`.
    pub price: String,
    pub stock: String,
    pub limit: String,
    /// `datetime-local` values, in the browser's time zone.
    pub starts_at: String,
    pub ends_at: String,
}

/// Errors of a form: for each wrong field, the i18n key of what is wrong.
pub type FieldErrors = Vec<(Field, &'static str)>;

impl ActivityForm {
    /// The form filled with an existing activity, for editing it.
    pub fn from_activity(a: &Activity, offset: UtcOffset) -> Self {
        Self {
            name: a.name.clone(),
            price: format::price_input(a.price_cents),
            stock: a.total_stock.to_string(),
            limit: a.limit_per_user.to_string(),
            starts_at: format::to_input(a.starts_at, offset),
            ends_at: format::to_input(a.ends_at, offset),
        }
    }

    /// A blank form for a new activity starting at the next full hour, for one hour.
    pub fn new_default(now: OffsetDateTime, offset: UtcOffset) -> Self {
        let local = now.to_offset(offset);
        let next_hour = local.replace_minute(0).and_then(|t| t.replace_second(0)).and_then(|t| t.replace_nanosecond(0));
        let start = next_hour.map(|t| t + time::Duration::hours(1)).unwrap_or(local);
        Self {
            name: String::new(),
            price: String::new(),
            stock: "100".into(),
            limit: "1".into(),
            starts_at: format::to_input(start, offset),
            ends_at: format::to_input(start + time::Duration::hours(1), offset),
        }
    }

    /// The text of one field.
    pub fn get(&self, field: Field) -> &str {
        match field {
            Field::Name => &self.name,
            Field::Price => &self.price,
            Field::Stock => &self.stock,
            Field::Limit => &self.limit,
            Field::Start => &self.starts_at,
            Field::End => &self.ends_at,
        }
    }

    /// Replaces the text of one field.
    pub fn set(&mut self, field: Field, value: String) {
        let slot = match field {
            Field::Name => &mut self.name,
            Field::Price => &mut self.price,
            Field::Stock => &mut self.stock,
            Field::Limit => &mut self.limit,
            Field::Start => &mut self.starts_at,
            Field::End => &mut self.ends_at,
        };
        *slot = value;
    }

    /// Checks every field and builds the body, or names each wrong field.
    ///
    /// `to_utc` turns a wall-clock time of the browser's zone into an instant
    /// (the browser knows the zone's offset at that date).
    pub fn validate(&self, to_utc: &dyn Fn(PrimitiveDateTime) -> OffsetDateTime) -> Result<NewActivity, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = self.name.trim();
        if name.is_empty() {
            errors.push((Field::Name, "form.err.name_required"));
        } else if name.chars().count() > MAX_NAME_CHARS {
            errors.push((Field::Name, "form.err.name_long"));
        }
        let price = format::parse_price(&self.price);
        if price.is_none() {
            errors.push((Field::Price, "form.err.price"));
        }
        let stock = parse_int(&self.stock);
        match stock {
            None => errors.push((Field::Stock, "form.err.integer")),
            Some(s) if s < 0 => errors.push((Field::Stock, "form.err.stock_negative")),
            Some(s) if s > MAX_STOCK => errors.push((Field::Stock, "form.err.stock_large")),
            Some(_) => {}
        }
        let limit = parse_int(&self.limit);
        match limit {
            None => errors.push((Field::Limit, "form.err.integer")),
            Some(l) if l < 1 => errors.push((Field::Limit, "form.err.limit_small")),
            Some(l) if l > MAX_LIMIT_PER_USER => errors.push((Field::Limit, "form.err.limit_large")),
            Some(_) => {}
        }
        let starts_at = format::parse_input(&self.starts_at).map(to_utc);
        if starts_at.is_none() {
            errors.push((Field::Start, "form.err.datetime"));
        }
        let ends_at = format::parse_input(&self.ends_at).map(to_utc);
        match (starts_at, ends_at) {
            (_, None) => errors.push((Field::End, "form.err.datetime")),
            (Some(s), Some(e)) if e <= s => errors.push((Field::End, "form.err.end_before_start")),
            _ => {}
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewActivity {
            name: name.to_owned(),
            price_cents: price.unwrap_or_default(),
            total_stock: stock.unwrap_or_default(),
            limit_per_user: limit.unwrap_or_default(),
            starts_at: starts_at.expect("checked above"),
            ends_at: ends_at.expect("checked above"),
        })
    }
}

/// A whole number, allowing `1,000` and `1_000` for readability.
fn parse_int(s: &str) -> Option<i64> {
    let cleaned: String = s.trim().chars().filter(|c| *c != ',' && *c != '_').collect();
    if cleaned.is_empty() {
        return None;
    }
    cleaned.parse().ok()
}

/// The body of `PATCH /admin/api/activities/{id}`: only the fields that changed.
pub fn patch_body(original: &Activity, edited: &NewActivity) -> Map<String, Value> {
    let mut out = Map::new();
    if original.name != edited.name {
        out.insert("name".into(), edited.name.clone().into());
    }
    if original.price_cents != edited.price_cents {
        out.insert("price_cents".into(), edited.price_cents.into());
    }
    if original.total_stock != edited.total_stock {
        out.insert("total_stock".into(), edited.total_stock.into());
    }
    if original.limit_per_user != edited.limit_per_user {
        out.insert("limit_per_user".into(), edited.limit_per_user.into());
    }
    let rfc = |t: OffsetDateTime| {
        t.to_offset(UtcOffset::UTC).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
    };
    // The form has minute precision: seconds the server keeps are no change.
    let minute = |t: OffsetDateTime| t.unix_timestamp().div_euclid(60);
    if minute(original.starts_at) != minute(edited.starts_at) {
        out.insert("starts_at".into(), rfc(edited.starts_at).into());
    }
    if minute(original.ends_at) != minute(edited.ends_at) {
        out.insert("ends_at".into(), rfc(edited.ends_at).into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use seckill_api::ActivityStatus;
    use time::macros::{datetime, offset};

    fn utc8(p: PrimitiveDateTime) -> OffsetDateTime {
        p.assume_offset(offset!(+8))
    }

    fn good() -> ActivityForm {
        ActivityForm {
            name: " Phone ".into(),
            price: "1999.00".into(),
            stock: "1,000".into(),
            limit: "2".into(),
            starts_at: "2026-11-11T20:00".into(),
            ends_at: "2026-11-11T21:00".into(),
        }
    }

    #[test]
    fn a_good_form_becomes_the_body() {
        let new = good().validate(&utc8).unwrap();
        assert_eq!(new.name, "Phone");
        assert_eq!(new.price_cents, 199_900);
        assert_eq!(new.total_stock, 1000);
        assert_eq!(new.limit_per_user, 2);
        assert_eq!(new.starts_at, datetime!(2026-11-11 12:00 UTC));
        assert_eq!(new.ends_at, datetime!(2026-11-11 13:00 UTC));
    }

    #[test]
    fn fields_by_name() {
        let mut f = good();
        for field in Field::ALL {
            f.set(field, format!("{field:?}"));
            assert_eq!(f.get(field), format!("{field:?}"));
        }
    }

    #[test]
    fn zero_stock_is_allowed() {
        let mut f = good();
        f.stock = "0".into();
        assert_eq!(f.validate(&utc8).unwrap().total_stock, 0);
    }

    fn errors(f: ActivityForm) -> FieldErrors {
        f.validate(&utc8).unwrap_err()
    }

    #[test]
    fn each_rule_names_its_field() {
        type Spoil = fn(&mut ActivityForm);
        let cases: [(Spoil, Field, &str); 10] = [
            (|f| f.name = "  ".into(), Field::Name, "form.err.name_required"),
            (|f| f.name = "x".repeat(201), Field::Name, "form.err.name_long"),
            (|f| f.price = "-1".into(), Field::Price, "form.err.price"),
            (|f| f.stock = "-1".into(), Field::Stock, "form.err.stock_negative"),
            (|f| f.stock = "1.5".into(), Field::Stock, "form.err.integer"),
            (|f| f.stock = "1000000000001".into(), Field::Stock, "form.err.stock_large"),
            (|f| f.limit = "0".into(), Field::Limit, "form.err.limit_small"),
            (|f| f.ends_at = f.starts_at.clone(), Field::End, "form.err.end_before_start"),
            (|f| f.ends_at = "2026-11-11T19:00".into(), Field::End, "form.err.end_before_start"),
            (|f| f.starts_at = "tomorrow".into(), Field::Start, "form.err.datetime"),
        ];
        for (spoil, field, key) in cases {
            let mut f = good();
            spoil(&mut f);
            assert_eq!(errors(f), vec![(field, key)]);
        }
    }

    #[test]
    fn all_errors_at_once() {
        let f = ActivityForm::default();
        let fields: Vec<Field> = errors(f).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, Field::ALL.to_vec());
    }

    #[test]
    fn backend_messages_map_to_fields() {
        assert_eq!(Field::from_message("ends_at: must be after starts_at"), Some(Field::End));
        assert_eq!(Field::from_message("total_stock: must be between 0 and 1"), Some(Field::Stock));
        assert_eq!(Field::from_message("activity vanished"), None);
    }

    fn activity() -> Activity {
        Activity {
            id: 7,
            name: "Phone".into(),
            price_cents: 199_900,
            total_stock: 1000,
            remaining: 1000,
            sold: 0,
            limit_per_user: 2,
            starts_at: datetime!(2026-11-11 12:00 UTC),
            ends_at: datetime!(2026-11-11 13:00 UTC),
            status: ActivityStatus::Scheduled,
        }
    }

    #[test]
    fn editing_round_trips_and_patches_only_changes() {
        let a = activity();
        let form = ActivityForm::from_activity(&a, offset!(+8));
        assert_eq!(form.starts_at, "2026-11-11T20:00");
        assert_eq!(form.price, "1999");
        let same = form.validate(&utc8).unwrap();
        assert!(patch_body(&a, &same).is_empty());

        let mut changed = form.clone();
        changed.stock = "500".into();
        changed.ends_at = "2026-11-11T22:00".into();
        let body = patch_body(&a, &changed.validate(&utc8).unwrap());
        assert_eq!(Value::Object(body), serde_json::json!({"total_stock": 500, "ends_at": "2026-11-11T14:00:00Z"}));
    }

    #[test]
    fn default_form_starts_at_the_next_hour() {
        let f = ActivityForm::new_default(datetime!(2026-11-11 12:34:56 UTC), offset!(+8));
        assert_eq!(f.starts_at, "2026-11-11T21:00");
        assert_eq!(f.ends_at, "2026-11-11T22:00");
    }
}
