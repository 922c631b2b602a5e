//! What every handler can reach, and how it is built from the settings:
//! connections to Redis and the order database, the caches, and the
//! background tasks of this process's role. Handlers and extractors take
//! only the part they need (`State<Store>`, `State<Orders>`, …) through
//! `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::admin_session::AdminSessions;
use crate::anti_bot::AntiBot;
use crate::blacklist::Blacklist;
use crate::checklist::Probes;
use crate::config::{Secrets, Settings};
use crate::credentials::Credentials;
use crate::db::Db;
use crate::live::LiveStats;
use crate::orders::Orders;
use crate::purchase_batch::PurchaseBatcher;
use crate::store::Store;
use crate::telemetry::BuyerSchemes;
use crate::ui_assets::UiAssets;
use crate::worker::{OrderWorker, OrderWorkerConfig};

/// What every handler can reach: one shared [`Shared`], so a clone is one
/// reference count. (axum clones the state for every request, more than once:
/// cloning each part's handles instead cost ~8 % of a purchase's CPU.)
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts handlers take through `FromRef` (`State<Store>`, …).
macro_rules! parts_from_ref {
    ($($field:ident: $ty:ty),* $(,)?) => {
        $(impl FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> Self {
                state.0.$field.clone()
            }
        })*
    };
}

parts_from_ref!(
    settings: Arc<Settings>,
    credentials: Arc<Credentials>,
    admin: AdminSessions,
    store: Store,
    purchases: PurchaseBatcher,
    orders: Orders,
    blacklist: Blacklist,
    live: LiveStats,
    ui: Arc<UiAssets>,
    schemes: Arc<BuyerSchemes>,
    anti_bot: AntiBot,
);

/// What an [`AppState`] holds.
pub struct Shared {
    pub settings: Arc<Settings>,
    pub credentials: Arc<Credentials>,
    /// Admin sessions: login, verification, revocation.
    pub admin: AdminSessions,
    pub store: Store,
    /// Purchases go to Redis through here, batched per activity.
    pub purchases: PurchaseBatcher,
    pub orders: Orders,
    pub blacklist: Blacklist,
    pub live: LiveStats,
    /// The admin UI's built files, once there are any.
    pub ui: Arc<UiAssets>,
    /// Buyer requests by the scheme they reached the edge with.
    pub schemes: Arc<BuyerSchemes>,
    /// The token step's proof of work.
    pub anti_bot: AntiBot,
}

impl AppState {
    /// Connects to Redis and the order database (running its migrations).
    pub async fn new(settings: Settings, secrets: &Secrets) -> anyhow::Result<Self> {
        // Before anything records a metric (the breakers publish theirs when made).
        crate::telemetry::prometheus();
        let replicas_ack = settings.replicas_ack().map_err(anyhow::Error::msg)?;
        let store = Store::connect(&settings.redis_url, settings.redis_timeout())
            .await?
            .with_replicas_ack(replicas_ack)
            .with_breaker(settings.breaker());
        let mut db = Db::connect_with_pool(&settings.database_url, settings.database_pool_size)
            .await?
            .with_breaker(settings.breaker());
        if let Some(replica) = &settings.database_replica_url {
            db = db.with_replica(replica, settings.database_replica_max_lag_ms)?;
        }
        let credentials = Credentials::new(&secrets.jwt, &secrets.edge).with_payment_secret(secrets.payment.as_deref());
        let admin = AdminSessions::new(store.clone(), &secrets.admin_password);
        let settings_ui_dir = settings.admin_ui_dir.clone();
        let purchases = PurchaseBatcher::new(store.clone(), settings.pay_timeout_secs * 1000);
        Ok(Self(Arc::new(Shared {
            settings: Arc::new(settings),
            credentials: Arc::new(credentials),
            admin,
            orders: Orders { store: store.clone(), db },
            purchases,
            store,
            blacklist: Blacklist::default(),
            live: LiveStats::default(),
            ui: Arc::new(UiAssets::new(&settings_ui_dir)),
            schemes: Arc::default(),
            anti_bot: AntiBot::new(&secrets.jwt),
        })))
    }

    /// Starts the background work of this process's role: the blacklist
    /// refresher and script loading for the API; the order worker, the expiry
    /// sweeper and the reconciler for the worker.
    pub async fn start_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        if self.settings.role.runs_worker() {
            let config =
                OrderWorkerConfig { claim_idle_ms: self.settings.claim_idle_ms, ..OrderWorkerConfig::default() };
            let worker = OrderWorker::new(
                self.store.clone(),
                self.orders.db.clone(),
                OrderWorker::default_consumer_name(),
                config,
            );
            tasks.push(worker.spawn());
            let sweep = std::time::Duration::from_millis(self.settings.sweep_interval_ms);
            tasks.push(crate::worker::spawn_sweeper(self.orders.clone(), sweep));
            let every = std::time::Duration::from_secs(self.settings.reconcile_interval_secs);
            tasks.push(crate::reconcile::spawn_reconciler(self.orders.clone(), every));
            tasks.push(crate::payments::spawn_applier(self.orders.clone(), OrderWorker::default_consumer_name()));
        }
        if !self.settings.role.serves_http() {
            return tasks;
        }
        if let Err(e) = self.blacklist.refresh(&self.store, true).await {
            tracing::warn!(error = %e, "initial blacklist load failed; will retry");
        }
        if let Err(e) = self.store.load_scripts().await {
            tracing::warn!(error = %e, "loading scripts failed; they load on first use");
        }
        tasks.push(self.blacklist.spawn_refresher(self.store.clone()));
        if let Err(e) = self.anti_bot.refresh(&self.store).await {
            tracing::warn!(error = %e, "anti-bot switch not read; will retry");
        }
        tasks.push(self.anti_bot.spawn_refresher(self.store.clone()));
        tasks.extend(self.orders.db.spawn_replica_watch());
        let name = crate::instances::name(self.settings.listen);
        tasks.push(crate::instances::start_heartbeat(self.store.clone(), name).await);
        tasks.push(crate::edge::spawn_rules_publisher(
            self.store.clone(),
            self.orders.db.clone(),
            std::time::Duration::from_secs(5),
        ));
        tasks
    }
}

impl FromRef<AppState> for Probes {
    fn from_ref(state: &AppState) -> Self {
        Probes {
            anti_bot: state.anti_bot.clone(),
            settings: state.settings.clone(),
            orders: state.orders.clone(),
            ui_built: state.ui.files().is_some(),
            schemes: state.schemes.clone(),
        }
    }
}
