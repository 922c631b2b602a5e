//! The dashboard's pages and their URLs. Routing is by the URL's fragment
//! (`/admin/#/activities/3`), so the backend serves one `index.html` at
//! `/admin/` and needs no fallback for deep links.

use seckill_api::OrderStatus;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Activities,
    NewActivity,
    Activity(u64),
    EditActivity(u64),
    Reconciliation(u64),
    Preflight(u64),
    Orders {
        activity: Option<u64>,
        status: Option<OrderStatus>,
    },
    EdgeRules,
    Blacklist,
    Checklist,
    /// Order events the worker could not write, to replay or refund.
    DeadLetters,
    NotFound(String),
}

impl Route {
    /// The route a `location.hash` names (`#/orders?activity=3`); empty means the start page.
    pub fn parse(hash: &str) -> Route {
        let raw = hash.trim_start_matches('#');
        let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let id = |s: &str| s.parse::<u64>().ok();
        match segments.as_slice() {
            [] | ["activities"] => Route::Activities,
            ["activities", "new"] => Route::NewActivity,
            ["activities", a] if id(a).is_some() => Route::Activity(id(a).unwrap_or_default()),
            ["activities", a, rest] if id(a).is_some() => {
                let a = id(a).unwrap_or_default();
                match *rest {
                    "edit" => Route::EditActivity(a),
                    "reconciliation" => Route::Reconciliation(a),
                    "preflight" => Route::Preflight(a),
                    _ => Route::NotFound(raw.to_owned()),
                }
            }
            ["orders"] => {
                let mut activity = None;
                let mut status = None;
                for pair in query.split('&') {
                    match pair.split_once('=') {
                        Some(("activity", v)) => activity = v.parse().ok(),
                        Some(("status", v)) => status = OrderStatus::parse(v),
                        _ => {}
                    }
                }
                Route::Orders { activity, status }
            }
            ["edge"] => Route::EdgeRules,
            ["blacklist"] => Route::Blacklist,
            ["checklist"] => Route::Checklist,
            ["dead-letters"] => Route::DeadLetters,
            _ => Route::NotFound(raw.to_owned()),
        }
    }

    /// The `href` of the route (`#/activities/3`).
    pub fn href(&self) -> String {
        match self {
            Route::Activities => "#/activities".into(),
            Route::NewActivity => "#/activities/new".into(),
            Route::Activity(id) => format!("#/activities/{id}"),
            Route::EditActivity(id) => format!("#/activities/{id}/edit"),
            Route::Reconciliation(id) => format!("#/activities/{id}/reconciliation"),
            Route::Preflight(id) => format!("#/activities/{id}/preflight"),
            Route::Orders { activity, status } => {
                let mut query = Vec::new();
                if let Some(a) = activity {
                    query.push(format!("activity={a}"));
                }
                if let Some(s) = status {
                    query.push(format!("status={}", s.as_str()));
                }
                if query.is_empty() { "#/orders".into() } else { format!("#/orders?{}", query.join("&")) }
            }
            Route::EdgeRules => "#/edge".into(),
            Route::Blacklist => "#/blacklist".into(),
            Route::Checklist => "#/checklist".into(),
            Route::DeadLetters => "#/dead-letters".into(),
            Route::NotFound(raw) => format!("#{raw}"),
        }
    }

    /// The top-level section the route belongs to (for the navigation's highlight).
    pub fn section(&self) -> Section {
        match self {
            Route::Activities
            | Route::NewActivity
            | Route::Activity(_)
            | Route::EditActivity(_)
            | Route::Reconciliation(_)
            | Route::Preflight(_)
            | Route::NotFound(_) => Section::Activities,
            Route::Orders { .. } | Route::DeadLetters => Section::Orders,
            Route::EdgeRules => Section::Edge,
            Route::Blacklist => Section::Blacklist,
            Route::Checklist => Section::Checklist,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Activities,
    Orders,
    Edge,
    Blacklist,
    Checklist,
}

impl Section {
    pub const ALL: [Section; 5] =
        [Section::Activities, Section::Orders, Section::Edge, Section::Blacklist, Section::Checklist];

    /// The route the navigation link opens.
    pub fn route(self) -> Route {
        match self {
            Section::Activities => Route::Activities,
            Section::Orders => Route::Orders { activity: None, status: None },
            Section::Edge => Route::EdgeRules,
            Section::Blacklist => Route::Blacklist,
            Section::Checklist => Route::Checklist,
        }
    }

    /// The i18n key of its name.
    pub fn label(self) -> &'static str {
        match self {
            Section::Activities => "nav.activities",
            Section::Orders => "nav.orders",
            Section::Edge => "nav.edge",
            Section::Blacklist => "nav.blacklist",
            Section::Checklist => "nav.checklist",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_round_trips() {
        let routes = [
            Route::Activities,
            Route::NewActivity,
            Route::Activity(3),
            Route::EditActivity(3),
            Route::Reconciliation(42),
            Route::Preflight(42),
            Route::Orders { activity: None, status: None },
            Route::Orders { activity: Some(3), status: None },
            Route::Orders { activity: Some(3), status: Some(OrderStatus::PendingPayment) },
            Route::Orders { activity: None, status: Some(OrderStatus::Paid) },
            Route::EdgeRules,
            Route::Blacklist,
            Route::Checklist,
            Route::DeadLetters,
        ];
        for r in routes {
            assert_eq!(Route::parse(&r.href()), r, "{}", r.href());
        }
    }

    #[test]
    fn lenient_parsing() {
        assert_eq!(Route::parse(""), Route::Activities);
        assert_eq!(Route::parse("#"), Route::Activities);
        assert_eq!(Route::parse("#/"), Route::Activities);
        assert_eq!(Route::parse("#/activities/"), Route::Activities);
        assert_eq!(Route::parse("#/orders?status=bogus&activity=x"), Route::Orders { activity: None, status: None });
        assert_eq!(Route::parse("#/nope"), Route::NotFound("/nope".into()));
        assert_eq!(Route::parse("#/activities/x/edit"), Route::NotFound("/activities/x/edit".into()));
    }

    #[test]
    fn sections() {
        assert_eq!(Route::Preflight(1).section(), Section::Activities);
        for s in Section::ALL {
            assert_eq!(s.route().section(), s);
        }
    }
}
