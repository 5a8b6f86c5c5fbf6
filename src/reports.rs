//! The weekly monitoring report, e-mailed to the DSL each Monday at `[console]
//! weekly_report` (local time) to `[alerts.email] to`. Change control builds it and
//! remembers the week sent; the alert crate sends it. Looked at every 30 seconds.

use std::sync::Arc;
use std::time::Duration;

use hedgerow_admin::Admin;
use hedgerow_policy::PolicyHandle;

/// How often the schedule is looked at.
const TICK: Duration = Duration::from_secs(30);

/// Sends each week's report once it is due (see `Admin::weekly_report_due`).
pub(crate) fn spawn_weekly(
    admin: Arc<Admin>,
    handle: Arc<PolicyHandle>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            send_due(&admin, &handle).await;
            tokio::time::sleep(TICK).await;
        }
    })
}

async fn send_due(admin: &Arc<Admin>, handle: &PolicyHandle) {
    let config = handle.snapshot().config().clone();
    let Some(at) = config.console.as_ref().and_then(|c| c.weekly_report) else {
        return;
    };
    let Some(alerts) = config.alerts.filter(|a| a.email.is_some()) else {
        return;
    };
    let a = admin.clone();
    let due = tokio::task::spawn_blocking(move || {
        let now = a.clock_now();
        match a.weekly_report_due(now, at)? {
            Some(week) => {
                Ok::<_, hedgerow_admin::AdminError>(Some((week, a.weekly_report_email(week)?)))
            }
            None => Ok(None),
        }
    })
    .await;
    let (week, mail) = match due {
        Ok(Ok(Some(d))) => d,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::error!("the weekly report: {e}");
            return;
        }
        Err(e) => {
            tracing::error!("the weekly report: {e}");
            return;
        }
    };
    match hedgerow_alert::send_report(&alerts, &mail.subject, &mail.html, &mail.text).await {
        Ok(()) => {
            let a = admin.clone();
            match tokio::task::spawn_blocking(move || a.mark_weekly_report_sent(week)).await {
                Ok(Ok(())) => tracing::info!(%week, "weekly monitoring report e-mailed"),
                Ok(Err(e)) => tracing::error!("recording the weekly report as sent: {e}"),
                Err(e) => tracing::error!("recording the weekly report as sent: {e}"),
            }
        }
        Err(e) => tracing::warn!(%week, "e-mailing the weekly report (tried again in 30 s): {e}"),
    }
}
