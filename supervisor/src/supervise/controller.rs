//! A plugin's controller: the one task that starts its workers, watches
//! them, restarts them by the restart policy ([`crate::supervise::lifecycle`]), checks
//! their health, reloads them and carries out admin orders. Everything
//! that changes a plugin's state goes through here, one order at a time.
//!
//! Hot reload: a new generation is started beside the serving one; once
//! it is ready, new calls go to it and the old one drains (its queued
//! calls are answered before the `Shutdown` frame behind them) and stops.
//! If the new one fails, the old one keeps serving and the failure is the
//! plugin's `error`.

use crate::process::worker::{Called, Chain, Ended, StartError};
use crate::supervise::crash_report;
use crate::supervise::disabled;
use crate::supervise::discovery;
use crate::supervise::handle::{Order, Orders, PluginHandle, Route, Spec, Supervision};
use crate::supervise::launch::{
    self, LaunchError, Running, SPARE_DELAY, Spare, join, made_spare, spare_exited, wait_ended,
};
use crate::supervise::lifecycle::{Ending, Next, Restarts};
use crate::supervise::want::{self, Step, Want};
use corral_plugin_api::manifest::StartMode;
use corral_plugin_api::wire::{Action, EventKind, ExitCause, HEALTH_METHOD, PluginState};
use corral_plugin_api::{ErrorKind, RemoteError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior, sleep_until};
use tracing::{debug, error, info, warn};

/// Runs `plugin` until `shutdown` turns true or its folder is removed.
pub(crate) async fn run(
    plugin: Arc<PluginHandle>,
    supervision: Arc<Supervision>,
    orders: Orders,
    shutdown: watch::Receiver<bool>,
    dependencies: Vec<Arc<PluginHandle>>,
    blocked: Option<String>,
) {
    let spec = plugin.spec();
    let want = Want::initial(
        blocked,
        disabled::is_disabled(&supervision, plugin.name()),
        spec.plugin.manifest.start == StartMode::Lazy,
    );
    let controller = Controller {
        restarts: Restarts::new(spec.plugin.manifest.restart.clone()),
        plugin,
        supervision,
        want,
        running: None,
        slot: None,
        next_start: None,
        waiters: Vec::new(),
        dependencies,
        health: None,
        health_failures: 0,
        spare: None,
        making_spare: None,
    };
    controller.run(orders, shutdown).await;
}

struct Controller {
    plugin: Arc<PluginHandle>,
    supervision: Arc<Supervision>,
    want: Want,
    restarts: Restarts,
    running: Option<Running>,
    /// The worker slot (`max_plugins`) held while a worker runs or starts.
    slot: Option<OwnedSemaphorePermit>,
    /// Backoff: no start before this.
    next_start: Option<Instant>,
    /// Admin orders waiting for the next start's outcome.
    waiters: Vec<oneshot::Sender<Result<(), RemoteError>>>,
    dependencies: Vec<Arc<PluginHandle>>,
    health: Option<Interval>,
    health_failures: u32,
    spare: Option<Spare>,
    /// A spare being made.
    making_spare: Option<JoinHandle<Result<Spare, StartError>>>,
}

impl Controller {
    async fn run(mut self, mut orders: Orders, mut shutdown: watch::Receiver<bool>) {
        let name = self.plugin.name().to_owned();
        self.show_idle();
        let (health_tx, mut health_rx) = mpsc::unbounded_channel();
        let mut dependency: Option<watch::Receiver<Route>> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let want_start = self.want == Want::Run
                && self.running.is_none()
                && self.next_start.is_none_or(|at| at <= Instant::now());
            if want_start {
                self.next_start = None;
                dependency = self.unready_dependency();
                let slot_free = self.take_slot();
                if dependency.is_none() && slot_free {
                    // Whatever is ready goes first (a yield costs about a
                    // microsecond): after a crash, the tasks telling
                    // direct-channel clients and then (one sched_yield)
                    // the clients' own threads, before the replacement's
                    // start takes the CPU.
                    tokio::task::yield_now().await;
                    std::thread::yield_now();
                    // Boxed, like every start and order below: a start's
                    // future is large, and would otherwise make every idle
                    // controller (one per plugin) as large.
                    Box::pin(self.start()).await;
                    continue;
                }
            }
            let backoff = self.next_start.filter(|_| self.running.is_none());
            let slots = self
                .supervision
                .slots
                .clone()
                .filter(|_| want_start && self.slot.is_none());
            tokio::select! {
                order = orders.recv() => match order {
                    Some(Order::Removed) | None => {
                        info!(plugin = %name, "plugin folder removed: stopping it for good");
                        break;
                    }
                    Some(order) => Box::pin(self.obey(order)).await,
                },
                ended = wait_ended(&mut self.running) => self.on_exit(ended),
                () = sleep_until(backoff.unwrap_or_else(Instant::now)), if backoff.is_some() => {
                    self.next_start = None;
                }
                changed = changed(&mut dependency), if dependency.is_some() => {
                    if changed.is_err() {
                        dependency = None; // that plugin is gone; look again
                    }
                }
                permit = async { slots?.acquire_owned().await.ok() }, if slots.is_some() => {
                    self.slot = permit;
                }
                _ = tick(&mut self.health) => self.check_health(&health_tx),
                made = made_spare(&mut self.making_spare) => self.on_spare(made),
                status = spare_exited(&self.spare) => self.on_spare_exit(status),
                Some((pid, result)) = health_rx.recv() => self.on_health(pid, result),
                _ = shutdown.changed() => {}
            }
        }
        Box::pin(self.stop_worker()).await;
        self.answer_waiters(Err(RemoteError::new(
            ErrorKind::Unavailable,
            format!("plugin `{name}` is stopped"),
        )));
        self.plugin.set(
            PluginState::Stopped,
            Route::Down(RemoteError::new(
                ErrorKind::Unavailable,
                format!("plugin `{name}` is stopped"),
            )),
        );
    }

    /// Shows the state for a plugin that is not starting now.
    fn show_idle(&self) {
        let Some((state, why)) = self.want.idle() else {
            return;
        };
        if let Want::Blocked(blocked) = &self.want {
            self.plugin.status().error = Some(blocked.clone());
        }
        let route = if state == PluginState::Installed {
            Route::Idle
        } else {
            Route::Down(RemoteError::new(
                ErrorKind::Unavailable,
                format!("plugin `{}` {why}", self.plugin.name()),
            ))
        };
        self.plugin.set(state, route);
    }

    /// The first dependency that is not ready, to wait for (asking a lazy
    /// one to start).
    fn unready_dependency(&self) -> Option<watch::Receiver<Route>> {
        for dependency in &self.dependencies {
            let route = dependency.watch_route();
            let ready = match &*route.borrow() {
                Route::Ready(_) => true,
                Route::Idle => {
                    dependency.order(Order::FirstCall);
                    false
                }
                Route::Starting | Route::Down(_) => false,
            };
            if !ready {
                let waiting = format!("waiting for dependency `{}`", dependency.name());
                self.plugin.set_state(PluginState::Installed);
                self.plugin.status().error = Some(waiting);
                return Some(route);
            }
        }
        None
    }

    /// Takes a worker slot if there is a cap; false when none is free.
    fn take_slot(&mut self) -> bool {
        let Some(slots) = &self.supervision.slots else {
            return true;
        };
        if self.slot.is_none() {
            self.slot = slots.clone().try_acquire_owned().ok();
        }
        if self.slot.is_none() {
            self.plugin.set_state(PluginState::Installed);
            self.plugin.status().error =
                Some("waiting for a worker slot (max_plugins reached)".into());
            return false;
        }
        true
    }

    /// Starts a worker and makes it the serving one.
    async fn start(&mut self) {
        let spec = self.plugin.spec();
        self.plugin.set(PluginState::Starting, Route::Starting);
        {
            let mut status = self.plugin.status();
            status.starts += 1;
            status.error = None;
        }
        match launch::launch(&self.plugin, &self.supervision, &spec, self.spare.take()).await {
            Ok(running) => {
                self.serve(running, &spec);
                self.answer_waiters(Ok(()));
            }
            Err(LaunchError::Failed(why)) => {
                error!(plugin = %self.plugin.name(), "start failed: {why}");
                self.plugin.status().error = Some(why.clone());
                let next =
                    self.restarts
                        .after(Instant::now().into_std(), Duration::ZERO, Ending::Failed);
                self.apply(next, &why);
                self.answer_waiters(Err(RemoteError::new(ErrorKind::Unavailable, why)));
            }
            Err(LaunchError::Permanent(why)) => {
                error!(plugin = %self.plugin.name(), "cannot start: {why}");
                self.plugin.status().error = Some(why.clone());
                self.apply(Next::GiveUp(why.clone()), &why);
                self.answer_waiters(Err(RemoteError::new(ErrorKind::Unavailable, why)));
            }
        }
        if self.running.is_none() {
            self.slot = None;
        }
    }

    /// Makes `running` the worker calls go to.
    fn serve(&mut self, running: Running, spec: &Spec) {
        {
            let mut status = self.plugin.status();
            status.generation = status.generation.max(1);
        }
        self.plugin
            .set(PluginState::Ready, Route::Ready(running.worker.clone()));
        self.running = Some(running);
        self.health_failures = 0;
        self.health = health_timer(spec);
        self.make_spare();
    }

    /// Starts making a spare, if the plugin wants one and has none.
    fn make_spare(&mut self) {
        let spec = self.plugin.spec();
        if !spec.plugin.manifest.restart.spare
            || self.spare.is_some()
            || self.making_spare.is_some()
        {
            return;
        }
        let (plugin, supervision) = (self.plugin.clone(), self.supervision.clone());
        self.making_spare = Some(tokio::spawn(async move {
            // A fork stalls the supervisor's other threads while it copies
            // the page tables: not while the new worker takes its first calls.
            tokio::time::sleep(SPARE_DELAY).await;
            let standby = launch::start_spare(&plugin, &spec, &supervision).await?;
            Ok(Spare { standby, spec })
        }));
    }

    /// The waiting spare died: it is reaped; make another.
    fn on_spare_exit(&mut self, status: nix::sys::wait::WaitStatus) {
        if let Some(spare) = self.spare.take() {
            let pid = spare.standby.pid();
            warn!(plugin = %self.plugin.name(), pid, "spare worker ended while waiting ({status:?}); making another");
            self.plugin.status().spare_pid = None;
        }
        if self.want == Want::Run && self.running.is_some() {
            self.make_spare();
        }
    }

    /// Keeps a spare that is ready, if it is still of the plugin's spec
    /// and a worker is wanted.
    fn on_spare(&mut self, made: Result<Result<Spare, StartError>, tokio::task::JoinError>) {
        self.making_spare = None;
        let name = self.plugin.name();
        match made {
            Ok(Ok(spare))
                if self.want == Want::Run && Arc::ptr_eq(&spare.spec, &self.plugin.spec()) =>
            {
                debug!(plugin = %name, pid = spare.standby.pid(), "spare worker standing by");
                self.plugin.status().spare_pid = Some(spare.standby.pid());
                self.spare = Some(spare);
            }
            Ok(Ok(stale)) => drop(tokio::spawn(stale.standby.discard())),
            Ok(Err(error)) => warn!(plugin = %name, "cannot make a spare worker: {error}"),
            Err(error) => warn!(plugin = %name, "cannot make a spare worker: {error}"),
        }
    }

    /// Ends the spare, and the one being made, if any.
    fn drop_spare(&mut self) {
        self.plugin.status().spare_pid = None;
        if let Some(spare) = self.spare.take() {
            tokio::spawn(spare.standby.discard());
        }
        if let Some(making) = self.making_spare.take() {
            tokio::spawn(async move {
                if let Ok(Ok(spare)) = making.await {
                    spare.standby.discard().await;
                }
            });
        }
    }

    /// Spawns a worker from `spec` and waits for it to be ready and
    /// sandboxed.
    /// The serving worker exited on its own (or was killed by us for a
    /// limit): record it and follow the restart policy.
    fn on_exit(&mut self, ended: Ended) {
        let Some(running) = self.running.take() else {
            return;
        };
        self.slot = None;
        self.health = None;
        let ready_for = running.ready_at.elapsed();
        let name = self.plugin.name().to_owned();
        crash_report::write(&self.plugin, &self.supervision, running.pid, &ended);
        self.plugin.status().worker_ended(ended.exit.clone());
        let description = ended.exit.description.clone();
        warn!(plugin = %name, pid = running.pid, "worker {description}");
        self.plugin.event(
            EventKind::Exit,
            format!(
                "worker {} {description} ({})",
                running.pid,
                ended.exit.cause.as_str()
            ),
        );
        let ending = if ended.exit.cause == ExitCause::Clean {
            Ending::Clean
        } else {
            Ending::Failed
        };
        let next = self
            .restarts
            .after(Instant::now().into_std(), ready_for, ending);
        self.apply(next, &format!("worker {description}"));
    }

    /// Carries out the restart policy's decision; `reason` is what ended
    /// the last run.
    fn apply(&mut self, next: Next, reason: &str) {
        let name = self.plugin.name().to_owned();
        match next {
            Next::Restart { delay, crashloop } => {
                self.next_start = Some(Instant::now() + delay);
                let state = if crashloop {
                    warn!(plugin = %name, "crash loop: 5 or more failures in 5 minutes; retrying in {delay:?}");
                    PluginState::Crashloop
                } else {
                    if !delay.is_zero() {
                        info!(plugin = %name, "restarting in {delay:?}");
                    }
                    PluginState::Backoff
                };
                self.plugin.set(
                    state,
                    Route::Down(RemoteError::new(
                        ErrorKind::Unavailable,
                        format!(
                            "plugin `{name}` restarts in {} ms, after: {reason}",
                            delay.as_millis()
                        ),
                    )),
                );
            }
            Next::Stay => {
                self.drop_spare();
                info!(plugin = %name, "not restarted ([restart] policy)");
                self.want = Want::Stopped;
                self.show_idle();
            }
            Next::GiveUp(why) => {
                self.drop_spare();
                error!(plugin = %name, "failed: {why}");
                self.want = Want::Failed;
                self.plugin.status().error = Some(why);
                self.show_idle();
            }
        }
    }

    async fn obey(&mut self, order: Order) {
        match order {
            Order::Admin { action, done } => self.admin(action, done).await,
            Order::Changed => {
                if let Err(error) = self.reload().await {
                    warn!(plugin = %self.plugin.name(), "{}", error.message);
                }
            }
            Order::FirstCall => {
                if self.want == Want::Lazy {
                    info!(plugin = %self.plugin.name(), "first call: starting");
                    self.want = Want::Run;
                }
            }
            Order::Removed => {}
        }
    }

    async fn admin(&mut self, action: Action, done: oneshot::Sender<Result<(), RemoteError>>) {
        let name = self.plugin.name().to_owned();
        info!(plugin = %name, "admin: {}", action.as_str());
        self.plugin.event(
            EventKind::Admin,
            format!("corral {} {name}", action.as_str()),
        );
        let step = want::admin(action, &self.want, self.running.is_some(), &name);
        let answer = match step {
            Step::Refuse(why) => Err(RemoteError::new(ErrorKind::BadRequest, why)),
            Step::KeepRunning => disabled::persist(&self.supervision, self.plugin.name(), false)
                .map(|()| self.want = Want::Run),
            Step::StartFresh => {
                match disabled::persist(&self.supervision, self.plugin.name(), false) {
                    Ok(()) => {
                        self.stop_worker().await;
                        self.want = Want::Run;
                        self.restarts.reset();
                        self.next_start = None;
                        self.waiters.push(done);
                        return;
                    }
                    Err(error) => Err(error),
                }
            }
            Step::Stop => {
                self.stop_worker().await;
                self.want = want::after_stop(std::mem::replace(&mut self.want, Want::Stopped));
                self.next_start = None;
                self.show_idle();
                Ok(())
            }
            Step::Disable => match disabled::persist(&self.supervision, self.plugin.name(), true) {
                Ok(()) => {
                    self.stop_worker().await;
                    self.want = Want::Disabled;
                    self.next_start = None;
                    self.show_idle();
                    Ok(())
                }
                Err(error) => Err(error),
            },
            Step::Reload => self.reload().await,
        };
        let _ = done.send(answer);
    }

    /// Reads the plugin's folder again and switches to it: beside the
    /// serving worker when there is one.
    async fn reload(&mut self) -> Result<(), RemoteError> {
        let name = self.plugin.name().to_owned();
        let dir = self.plugin.spec().plugin.dir.clone();
        let generation = self.plugin.status().generation;
        let plugin = self.plugin.clone();
        let failed = |why: String| {
            let message = if generation > 0 {
                format!("reload failed, generation {generation} still serving: {why}")
            } else {
                format!("reload failed: {why}")
            };
            plugin.status().error = Some(message.clone());
            plugin.event(EventKind::ReloadFailed, message.clone());
            RemoteError::new(ErrorKind::BadRequest, message)
        };
        let overrides = self.supervision.overrides.clone();
        let discovered = tokio::task::spawn_blocking(move || discovery::load(&dir, &overrides))
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|broken| failed(broken.error))?;
        if discovered.manifest.name != name {
            return Err(failed(format!(
                "the manifest now names `{}`; a renamed plugin is a new plugin (restart corral or move the folder)",
                discovered.manifest.name
            )));
        }
        let spec = Spec::new(discovered, &self.supervision);
        self.drop_spare(); // made for the old files
        self.restarts
            .set_settings(spec.plugin.manifest.restart.clone());
        if self.running.is_none() {
            self.plugin.set_spec(spec);
            let mut status = self.plugin.status();
            status.generation += 1;
            status.error = None;
            drop(status);
            if self.want == Want::Failed {
                // A new version deserves a new try.
                self.want = Want::Run;
                self.restarts.reset();
            }
            if self.want == Want::Run {
                self.next_start = None; // start the new version now
            } else {
                self.show_idle();
            }
            info!(plugin = %name, "reloaded (no worker was running)");
            self.plugin
                .event(EventKind::Reload, "reloaded while no worker ran".into());
            return Ok(());
        }
        info!(plugin = %name, "reloading: starting generation {} beside generation {generation}", generation + 1);
        match launch::launch(&self.plugin, &self.supervision, &spec, self.spare.take()).await {
            Ok(new) => {
                let old = self.running.take();
                self.plugin.set_spec(spec.clone());
                {
                    let mut status = self.plugin.status();
                    status.generation += 1;
                    status.error = None;
                }
                self.serve(new, &spec);
                if let Some(old) = old {
                    launch::retire(&self.plugin, old);
                }
                info!(plugin = %name, "generation {} serving", generation + 1);
                self.plugin.event(
                    EventKind::Reload,
                    format!(
                        "generation {} serving (version {})",
                        generation + 1,
                        spec.plugin.manifest.version
                    ),
                );
                Ok(())
            }
            Err(LaunchError::Failed(why) | LaunchError::Permanent(why)) => Err(failed(why)),
        }
    }

    /// Stops the serving worker, if any, and waits for it to exit; ends
    /// the spare.
    async fn stop_worker(&mut self) {
        self.drop_spare();
        let Some(running) = self.running.take() else {
            return;
        };
        self.health = None;
        let name = self.plugin.name().to_owned();
        self.plugin.set(
            PluginState::Stopping,
            Route::Down(RemoteError::new(
                ErrorKind::Unavailable,
                format!("plugin `{name}` is stopping"),
            )),
        );
        running.stop.send_replace(true);
        let ended = join(running.ended).await;
        info!(plugin = %name, pid = running.pid, "stopped: {}", ended.exit.description);
        self.plugin.event(
            EventKind::Exit,
            format!(
                "worker {} {} (stopped)",
                running.pid, ended.exit.description
            ),
        );
        self.plugin.status().worker_ended(ended.exit);
        self.slot = None;
    }

    /// Runs a health check of the serving worker, unless it is busy with
    /// calls (their deadlines already watch a stuck worker).
    fn check_health(&self, results: &HealthSender) {
        let Some(running) = &self.running else {
            return;
        };
        if running.worker.in_flight() > 0 {
            return;
        }
        let timeout = Duration::from_millis(self.plugin.spec().plugin.manifest.health.timeout_ms);
        let worker = running.worker.clone();
        let pid = running.pid;
        let results = results.clone();
        tokio::spawn(async move {
            let called = worker
                .call(
                    HEALTH_METHOD.into(),
                    Vec::new().into(),
                    Instant::now(),
                    timeout,
                    false,
                    Chain::default(),
                )
                .await;
            let result = match called {
                Called::Done(result) => result.map(drop),
                Called::Retired { .. } => Ok(()), // replaced; its health no longer matters
            };
            let _ = results.send((pid, result));
        });
    }

    fn on_health(&mut self, pid: u32, result: Result<(), RemoteError>) {
        let Some(running) = self.running.as_ref().filter(|r| r.pid == pid) else {
            return; // an answer from a worker that is gone
        };
        let name = self.plugin.name().to_owned();
        let limit = self.plugin.spec().plugin.manifest.health.failures;
        match result {
            Ok(()) => {
                if self.health_failures > 0 {
                    info!(plugin = %name, "healthy again");
                    self.health_failures = 0;
                    self.plugin.status().error = None;
                    if self.plugin.status().state == PluginState::Unhealthy {
                        self.plugin.set_state(PluginState::Ready);
                    }
                }
            }
            Err(error) => {
                self.health_failures += 1;
                let failures = self.health_failures;
                let why = format!(
                    "health check failed ({failures} of {limit}): {}",
                    error.message
                );
                warn!(plugin = %name, pid, "{why}");
                self.plugin.event(EventKind::Health, why.clone());
                self.plugin.set_state(PluginState::Unhealthy);
                self.plugin.status().error = Some(why);
                if failures >= limit {
                    running.worker.condemn(
                        ExitCause::Unhealthy,
                        format!("failed {failures} health checks in a row"),
                    );
                }
            }
        }
    }

    fn answer_waiters(&mut self, answer: Result<(), RemoteError>) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(answer.clone());
        }
    }
}

type HealthSender = mpsc::UnboundedSender<(u32, Result<(), RemoteError>)>;

fn health_timer(spec: &Spec) -> Option<Interval> {
    let period = Duration::from_millis(spec.plugin.manifest.health.interval_ms);
    if period.is_zero() {
        return None;
    }
    let mut timer = tokio::time::interval_at(Instant::now() + period, period);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Some(timer)
}

async fn tick(timer: &mut Option<Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn changed(
    route: &mut Option<watch::Receiver<Route>>,
) -> Result<(), watch::error::RecvError> {
    match route {
        Some(route) => route.changed().await,
        None => std::future::pending().await,
    }
}
