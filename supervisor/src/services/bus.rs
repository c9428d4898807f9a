//! The event bus: publications from plugins (`publish`) and host apps,
//! delivered to the plugins whose manifest subscribes to the topic
//! (`[events] subscribe`, as calls of `@event:TOPIC`) and to host apps
//! that subscribed over the socket.
//!
//! Delivery is at most once and in order per subscriber, through a bounded
//! queue each ([`QUEUE`]): a subscriber that falls behind loses the
//! publications that do not fit (counted and logged), and never slows the
//! publisher or the other subscribers. A plugin does not receive its own
//! publications.

use crate::services::Plugins;
use corral_plugin_api::ErrorKind;
use corral_plugin_api::abi::EVENT_METHOD_PREFIX;
use corral_plugin_api::manifest::topic_matches;
use corral_plugin_api::wire::Message;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Publications queued per subscriber.
pub(crate) const QUEUE: usize = 1024;

/// The bus.
pub(crate) struct Bus {
    plugins: Arc<dyn Plugins>,
    /// Each subscribed plugin's queue, made on its first publication.
    queues: Mutex<HashMap<String, mpsc::Sender<Message>>>,
    /// Host apps' subscriptions.
    clients: Mutex<Vec<Subscription>>,
}

struct Subscription {
    topics: Vec<String>,
    queue: mpsc::Sender<Message>,
}

impl Bus {
    pub(crate) fn new(plugins: Arc<dyn Plugins>) -> Self {
        Self {
            plugins,
            queues: Mutex::default(),
            clients: Mutex::default(),
        }
    }

    /// Hands `payload` on `topic` to every subscriber but `from`; returns
    /// how many took it. `from` is a plugin's name, or empty for a host
    /// app.
    pub(crate) fn publish(&self, from: &str, topic: &str, payload: Vec<u8>) -> u32 {
        let message = Message {
            topic: topic.to_owned(),
            from: from.to_owned(),
            payload,
        };
        let mut delivered = 0;
        for name in self.plugins.subscribed(topic) {
            if name != from && self.to_plugin(&name, message.clone()) {
                delivered += 1;
            }
        }
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.retain(|client| !client.queue.is_closed());
        for client in clients.iter() {
            if client
                .topics
                .iter()
                .any(|pattern| topic_matches(pattern, topic))
            {
                match client.queue.try_send(message.clone()) {
                    Ok(()) => delivered += 1,
                    Err(_) => warn!(
                        topic,
                        "a subscribed client is {QUEUE} messages behind; dropped one"
                    ),
                }
            }
        }
        delivered
    }

    /// A host app's subscription to `topics` (patterns); it ends when the
    /// receiver is dropped.
    pub(crate) fn subscribe(&self, topics: Vec<String>) -> mpsc::Receiver<Message> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Subscription { topics, queue });
        receiver
    }

    /// Queues `message` for plugin `name`; false when its queue is full.
    fn to_plugin(&self, name: &str, message: Message) -> bool {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let queue = queues.entry(name.to_owned()).or_insert_with(|| {
            let (queue, receiver) = mpsc::channel(QUEUE);
            tokio::spawn(deliver(self.plugins.clone(), name.to_owned(), receiver));
            queue
        });
        match queue.try_send(message) {
            Ok(()) => true,
            Err(error) => {
                warn!(plugin = name, topic = %error.into_inner().topic, "{QUEUE} events queued for the plugin; dropped one");
                false
            }
        }
    }
}

/// Delivers queued publications to plugin `name`, one at a time, as calls
/// of `@event:TOPIC` (which start a lazy plugin).
async fn deliver(plugins: Arc<dyn Plugins>, name: String, mut queue: mpsc::Receiver<Message>) {
    while let Some(message) = queue.recv().await {
        let method = format!("{EVENT_METHOD_PREFIX}{}", message.topic);
        if let Err(error) = plugins
            .call(&name, method, message.payload.into(), None, Arc::default())
            .await
        {
            match error.kind {
                // Removed since: nothing to deliver to.
                ErrorKind::UnknownPlugin => {}
                ErrorKind::Unavailable => {
                    debug!(plugin = %name, topic = %message.topic, "event not delivered: {error}");
                }
                _ => {
                    warn!(plugin = %name, topic = %message.topic, "event from `{}` failed: {error}", message.from)
                }
            }
        }
    }
}
