//! How many S3 requests are in flight: a congestion window over the HTTP attempts of one S3
//! client, so hoist's default concurrency is fast over latency and stays safe on a store that
//! throttles.
//!
//! Every attempt the SDK sends, a retry included, first takes a place in the [`Window`] and
//! gives it back when the response head arrives. The window starts at [`INITIAL`] places
//! (fewer if the concurrency is lower), grows by one place per answered request while requests
//! wait for a place (slow start: it doubles each round of answers) up to the concurrency in effect
//! (`--concurrency`, `concurrency:`, `max_concurrent_requests`, or [`crate::DEFAULT_CONCURRENCY`]),
//! and halves when the store answers 503 (SlowDown, ServiceUnavailable) or 429. It then
//! grows by one place per window's worth of answers (additive increase, multiplicative
//! decrease: TCP's answer to the same problem), so a store that sustains 20 requests in
//! flight sees hoist settle between 10 and 20 instead of 128 requests answered SlowDown and
//! retried. An answer to a request sent before the window last shrank neither shrinks it again
//! (one burst of SlowDowns is one signal) nor grows it (it describes the refused window).

use std::sync::{Arc, Mutex, MutexGuard};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Places in a new window: 16, as s3sync keeps, reaches 128 after three rounds of answers.
pub(crate) const INITIAL: usize = 16;

/// The congestion window of one S3 client's requests.
#[derive(Debug)]
pub(crate) struct Window {
    places: Arc<Semaphore>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The window, in places; fractional while growing by one place per window of answers.
    size: f64,
    /// Below this the window doubles each round (slow start); above it, one place a round.
    threshold: f64,
    /// The most places: the concurrency in effect.
    ceiling: f64,
    /// Places the semaphore holds or has handed out: `size` rounded down, at least 1.
    granted: usize,
    /// Places to take back as they are returned (the window shrank below what is in flight).
    owed: usize,
    /// How many times the window shrank; a place remembers the count it was taken at.
    shrinks: u64,
    /// Places handed out and not yet returned.
    in_flight: usize,
    /// Requests waiting for a place.
    waiting: usize,
}

/// What an answer says of the store's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Any response other than a throttling one.
    Served,
    /// 503 or 429: the store asks for fewer requests.
    Throttled,
    /// No response (a connection error, a timeout): says nothing of the window.
    Lost,
}

impl Answer {
    /// The answer an HTTP status is.
    pub(crate) fn of_status(status: u16) -> Answer {
        if status == 503 || status == 429 {
            Answer::Throttled
        } else {
            Answer::Served
        }
    }
}

/// One request's place in the window, given back when dropped or answered.
#[derive(Debug)]
pub(crate) struct Place {
    window: Arc<Window>,
    permit: Option<OwnedSemaphorePermit>,
    /// [`State::shrinks`] when the place was taken.
    shrinks: u64,
}

impl Window {
    /// A window that grows up to `ceiling` places.
    pub(crate) fn new(ceiling: usize) -> Arc<Window> {
        let ceiling = ceiling.max(1);
        let initial = INITIAL.min(ceiling);
        Arc::new(Window {
            places: Arc::new(Semaphore::new(initial)),
            state: Mutex::new(State {
                size: initial as f64,
                threshold: ceiling as f64,
                ceiling: ceiling as f64,
                granted: initial,
                owed: 0,
                shrinks: 0,
                in_flight: 0,
                waiting: 0,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements: a panic elsewhere cannot break it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a place in the window.
    pub(crate) async fn enter(self: &Arc<Self>) -> Place {
        let waiting = Waiting::new(self);
        let permit = Arc::clone(&self.places)
            .acquire_owned()
            .await
            .expect("the window's semaphore is never closed");
        // From waiting to in flight under one lock: an answer in between would see the window
        // neither waited for nor full.
        std::mem::forget(waiting);
        let mut state = self.state();
        state.waiting -= 1;
        state.in_flight += 1;
        Place {
            window: Arc::clone(self),
            permit: Some(permit),
            shrinks: state.shrinks,
        }
    }

    /// The window's size now, in places.
    #[cfg(test)]
    pub(crate) fn size(&self) -> usize {
        self.state().granted
    }

    /// Makes the semaphore hold `size` rounded down (at least one place).
    fn resize(&self, state: &mut State) {
        let want = (state.size as usize).max(1);
        while state.granted < want {
            if state.owed > 0 {
                state.owed -= 1;
            } else {
                self.places.add_permits(1);
            }
            state.granted += 1;
        }
        if state.granted > want {
            let surplus = state.granted - want;
            // Places not handed out are taken back now; the rest as they come back.
            let idle = self
                .places
                .available_permits()
                .min(surplus)
                .min(u32::MAX as usize);
            if idle > 0
                && let Ok(taken) = self.places.try_acquire_many(idle as u32)
            {
                taken.forget();
            } else {
                state.owed += idle;
            }
            state.owed += surplus - idle;
            state.granted = want;
        }
    }
}

/// Counts a request waiting for a place for as long as it waits (a wait given up included).
struct Waiting<'a>(&'a Window);

impl<'a> Waiting<'a> {
    fn new(window: &'a Window) -> Waiting<'a> {
        window.state().waiting += 1;
        Waiting(window)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.state().waiting -= 1;
    }
}

impl Place {
    /// Gives the place back with what the store answered.
    pub(crate) fn answered(mut self, answer: Answer) {
        self.give_back(answer);
    }

    fn give_back(&mut self, answer: Answer) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let window = &self.window;
        let mut state = window.state();
        // Only a window in use grows: while requests wait for a place, or every place is out.
        // One that is never filled proves nothing of the store.
        let full = state.waiting > 0 || state.in_flight >= state.granted;
        state.in_flight -= 1;
        // An answer to a request sent before the window last shrank describes the window the
        // store refused: it neither grows it nor shrinks it again.
        let current = self.shrinks == state.shrinks;
        match answer {
            Answer::Served if current && full && state.size < state.ceiling => {
                state.size += if state.size < state.threshold {
                    1.0
                } else {
                    1.0 / state.size
                };
                state.size = state.size.min(state.ceiling);
            }
            Answer::Throttled if current => {
                state.shrinks += 1;
                state.size = (state.size / 2.0).max(1.0);
                state.threshold = state.size;
                tracing::info!(
                    "the store is throttling requests (503 or 429): {} in flight at most now",
                    (state.size as usize).max(1)
                );
            }
            Answer::Served | Answer::Throttled | Answer::Lost => {}
        }
        if state.owed > 0 {
            state.owed -= 1;
            permit.forget();
        } else {
            drop(permit);
        }
        window.resize(&mut state);
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.give_back(Answer::Lost);
    }
}

/// An HTTP client whose every attempt takes a place in a [`Window`] first.
#[derive(Debug, Clone)]
pub(crate) struct WindowedClient {
    inner: SharedHttpClient,
    window: Arc<Window>,
}

impl WindowedClient {
    /// The SDK's default HTTPS client (hyper 1, rustls with aws-lc, proxies from the
    /// environment), windowed to at most `ceiling` requests in flight.
    pub(crate) fn new(ceiling: usize) -> WindowedClient {
        use aws_smithy_http_client::proxy::ProxyConfig;
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        use aws_smithy_http_client::{Builder, ConnectorBuilder};
        let inner = Builder::new().build_with_connector_fn(|settings, components| {
            let mut connector =
                ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            connector.build()
        });
        WindowedClient {
            inner,
            window: Window::new(ceiling),
        }
    }
}

impl HttpClient for WindowedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        WindowedConnector {
            inner: self.inner.http_connector(settings, components),
            window: Arc::clone(&self.window),
        }
        .into_shared()
    }

    fn validate_base_client_config(
        &self,
        runtime_components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.inner
            .validate_base_client_config(runtime_components, cfg)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[derive(Debug)]
struct WindowedConnector {
    inner: SharedHttpConnector,
    window: Arc<Window>,
}

impl HttpConnector for WindowedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let window = Arc::clone(&self.window);
        HttpConnectorFuture::new(async move {
            let place = window.enter().await;
            let response = inner.call(request).await;
            place.answered(match &response {
                Ok(response) => Answer::of_status(response.status().as_u16()),
                Err(_) => Answer::Lost,
            });
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use futures::FutureExt;

    use super::*;

    /// A place if one is free now. Outside a runtime: tokio's cooperative budget would make a
    /// free semaphore look busy after a task's 128th poll.
    fn enter(window: &Arc<Window>) -> Option<Place> {
        window.enter().now_or_never()
    }

    /// Keeps every place of the window in use, as an executor with more work than places
    /// does: answers the oldest `answers` times with `answer`, taking every place freed; then
    /// drops the rest unanswered.
    fn saturated(window: &Arc<Window>, answers: usize, answer: Answer) {
        let mut out = VecDeque::new();
        let fill = |out: &mut VecDeque<Place>| {
            while let Some(place) = enter(window) {
                out.push_back(place);
            }
        };
        fill(&mut out);
        for _ in 0..answers {
            out.pop_front().expect("a place in use").answered(answer);
            fill(&mut out);
        }
    }

    #[test]
    fn the_window_doubles_each_full_round_up_to_the_ceiling() {
        let window = Window::new(128);
        assert_eq!(window.size(), 16);
        saturated(&window, 16, Answer::Served);
        assert_eq!(window.size(), 32);
        saturated(&window, 32 + 64, Answer::Served);
        assert_eq!(window.size(), 128);
        saturated(&window, 1000, Answer::Served);
        assert_eq!(window.size(), 128, "never above the ceiling");

        let small = Window::new(4);
        assert_eq!(
            small.size(),
            4,
            "a concurrency below 16 is the window from the start"
        );
        saturated(&small, 100, Answer::Served);
        assert_eq!(small.size(), 4);
    }

    #[test]
    fn a_window_nobody_fills_does_not_grow() {
        let window = Window::new(128);
        for _ in 0..100 {
            enter(&window).expect("a place").answered(Answer::Served);
        }
        assert_eq!(window.size(), 16);
    }

    #[test]
    fn a_burst_of_throttles_halves_the_window_once_then_it_grows_a_place_a_round() {
        let window = Window::new(128);
        saturated(&window, 16 + 32, Answer::Served);
        assert_eq!(window.size(), 64);
        // All 64 in flight were sent under the same window, all throttled: one halving.
        saturated(&window, 64, Answer::Throttled);
        assert_eq!(window.size(), 32);
        // A throttle of a request sent after the shrink shrinks it again.
        saturated(&window, 1, Answer::Throttled);
        assert_eq!(window.size(), 16);
        // Above the threshold it grows a place per window of answers, not one per answer.
        saturated(&window, 16, Answer::Served);
        assert_eq!(
            window.size(),
            16,
            "16 answers add 16 sixteenths, less their growth"
        );
        saturated(&window, 2, Answer::Served);
        assert_eq!(window.size(), 17);
        saturated(&window, 18, Answer::Served);
        assert_eq!(window.size(), 18);
        // Never below one place.
        for _ in 0..10 {
            saturated(&window, 1, Answer::Throttled);
        }
        assert_eq!(window.size(), 1);
        saturated(&window, 1, Answer::Lost);
        assert_eq!(
            window.size(),
            1,
            "a lost answer neither grows nor shrinks it"
        );
    }

    #[test]
    fn a_shrunk_window_admits_no_more_than_its_size() {
        let window = Window::new(128);
        let mut places: Vec<Place> = std::iter::from_fn(|| enter(&window)).collect();
        assert_eq!(places.len(), 16);
        // The window halves while all 16 places are out: 8 are taken back as they return.
        places.pop().expect("a place").answered(Answer::Throttled);
        assert_eq!(window.size(), 8);
        assert!(
            enter(&window).is_none(),
            "15 in flight, 8 allowed: no place"
        );
        for place in places.drain(..7) {
            place.answered(Answer::Lost);
        }
        assert!(
            enter(&window).is_none(),
            "8 in flight, 8 allowed: still no place"
        );
        places.pop().expect("a place").answered(Answer::Lost);
        assert!(enter(&window).is_some(), "7 in flight, 8 allowed: a place");
        drop(places);
        let free: Vec<Place> = std::iter::from_fn(|| enter(&window)).collect();
        assert_eq!(free.len(), 8, "all returned: exactly the window's 8 places");
    }

    #[test]
    fn answers_to_requests_sent_before_a_shrink_do_not_grow_the_window() {
        let window = Window::new(128);
        let mut places: Vec<Place> = std::iter::from_fn(|| enter(&window)).collect();
        places.pop().expect("a place").answered(Answer::Throttled);
        assert_eq!(window.size(), 8);
        // The 15 requests sent under the old window of 16 come back served.
        for place in places {
            place.answered(Answer::Served);
        }
        assert_eq!(window.size(), 8, "the refused window's answers add nothing");
        // Answers to requests sent under the new window grow it, a place a round.
        saturated(&window, 9, Answer::Served);
        assert_eq!(window.size(), 9, "8 answers add a little less than a place");
    }

    #[tokio::test]
    async fn answers_arriving_at_once_still_double_a_window_requests_wait_for() {
        let window = Window::new(128);
        let held: Vec<Place> = std::iter::from_fn(|| enter(&window)).collect();
        assert_eq!(held.len(), 16);
        // 100 more requests wait, as an executor's do; then all 16 answers arrive before any
        // waiter runs.
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let window = Arc::clone(&window);
                tokio::spawn(async move { window.enter().await })
            })
            .collect();
        while window.state().waiting < 100 {
            tokio::task::yield_now().await;
        }
        for place in held {
            place.answered(Answer::Served);
        }
        assert_eq!(window.size(), 32);
        // The waiters given a place keep it, as requests in flight keep theirs. Let them run.
        for _ in 0..1000 {
            tokio::task::yield_now().await;
        }
        let state = window.state();
        assert_eq!(
            state.in_flight, 32,
            "the grown window admits 32 of the waiters"
        );
        assert_eq!(state.waiting, 68, "and the other 68 still wait");
        drop(state);
        let entered = waiters.iter().filter(|waiter| waiter.is_finished()).count();
        assert_eq!(entered, 32);
        for waiter in waiters {
            waiter.abort();
        }
    }
}
