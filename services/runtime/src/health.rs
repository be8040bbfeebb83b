//! Camera health into the ledger's alerts: one `camera_offline` alert per outage (offline or
//! stale), resolved when frames arrive again. A ledger error is logged, never fatal.

use rollcall_capture::{CameraHealth, HealthEvent};
use rollcall_ledger::Store;
use std::collections::BTreeMap;

/// The state a health event puts a camera in (`None`: no change).
pub fn health_state(h: &CameraHealth) -> Option<&'static str> {
    Some(match h {
        CameraHealth::Online { .. } => "online",
        CameraHealth::Offline { .. } | CameraHealth::Reconnecting { .. } => "offline",
        CameraHealth::Stale { .. } => "stale",
        CameraHealth::Ended => "ended",
        CameraHealth::ResolutionChanged { .. } => return None,
    })
}

/// Open outages by camera (start, ms), so an outage raises one alert.
#[derive(Default)]
pub struct CameraAlerts {
    outages: BTreeMap<String, i64>,
}

/// A camera alert to write or resolve (see [`CameraAlerts::on_event`]).
pub enum AlertWrite {
    Raise {
        camera: String,
        key: String,
        reason: String,
        at: chrono::DateTime<chrono::Utc>,
    },
    Resolve {
        camera: String,
    },
}

impl AlertWrite {
    /// Writes it; a ledger error is logged, never fatal.
    pub async fn write(self, store: &Store) {
        match self {
            AlertWrite::Raise {
                camera,
                key,
                reason,
                at,
            } => {
                if let Err(e) = store.raise_camera_alert(&camera, &key, &reason, at).await {
                    tracing::warn!(camera = %camera, error = %e, "cannot record camera alert");
                }
            }
            AlertWrite::Resolve { camera } => {
                if let Err(e) = store.resolve_camera_alerts(&camera).await {
                    tracing::warn!(camera = %camera, error = %e, "cannot resolve camera alert");
                }
            }
        }
    }
}

impl CameraAlerts {
    /// What a health event changes in the ledger (the write is the caller's, so it can run
    /// beside the live loop).
    pub fn on_event(&mut self, ev: &HealthEvent) -> Option<AlertWrite> {
        let cam = ev.camera.to_string();
        let reason = match &ev.health {
            CameraHealth::Offline { reason } => format!("offline ({reason})"),
            CameraHealth::Stale { since } => format!("no frame since {since}"),
            CameraHealth::Online { .. } => {
                return self
                    .outages
                    .remove(&cam)
                    .map(|_| AlertWrite::Resolve { camera: cam });
            }
            _ => return None,
        };
        let since = *self
            .outages
            .entry(cam.clone())
            .or_insert_with(|| ev.at.timestamp_millis());
        Some(AlertWrite::Raise {
            key: format!("camera:{cam}:{since}"),
            camera: cam,
            reason,
            at: ev.at,
        })
    }
}
