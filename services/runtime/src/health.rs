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

impl CameraAlerts {
    pub async fn on_event(&mut self, store: &Store, ev: &HealthEvent) {
        let cam = ev.camera.to_string();
        let reason = match &ev.health {
            CameraHealth::Offline { reason } => format!("offline ({reason})"),
            CameraHealth::Stale { since } => format!("no frame since {since}"),
            CameraHealth::Online { .. } => {
                if self.outages.remove(&cam).is_some() {
                    if let Err(e) = store.resolve_camera_alerts(&cam).await {
                        tracing::warn!(camera = %cam, error = %e, "cannot resolve camera alert");
                    }
                }
                return;
            }
            _ => return,
        };
        let since = *self
            .outages
            .entry(cam.clone())
            .or_insert_with(|| ev.at.timestamp_millis());
        let key = format!("camera:{cam}:{since}");
        if let Err(e) = store.raise_camera_alert(&cam, &key, &reason, ev.at).await {
            tracing::warn!(camera = %cam, error = %e, "cannot record camera alert");
        }
    }
}
