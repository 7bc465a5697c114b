//! Logging and tracing set-up. Structured logs go to stderr (filter with `RUST_LOG`, default
//! `info`, with openraft's per-election chatter at `warn`). When `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set, request spans are also exported with OpenTelemetry over OTLP/HTTP (the exporter reads
//! the standard `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` variables); when it is not set nothing is
//! exported and no exporter exists.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const SERVICE_NAME: &str = "strait-broker";

/// Keeps the exporter alive; dropping it after [`Telemetry::shutdown`] flushes pending spans.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the global subscriber. Returns an error message if OTLP was asked for but its
    /// exporter cannot be built (logging still works then).
    pub fn init(ansi: bool) -> (Telemetry, Option<String>) {
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi);
        let registry = tracing_subscriber::registry().with(filter).with(fmt);
        let wanted = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|v| !v.trim().is_empty());
        if wanted.is_none() {
            registry.init();
            return (Telemetry { provider: None }, None);
        }
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => {
                let provider = SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
                    .build();
                let tracer = provider.tracer(SERVICE_NAME);
                registry
                    .with(tracing_opentelemetry::layer().with_tracer(tracer))
                    .init();
                (
                    Telemetry {
                        provider: Some(provider),
                    },
                    None,
                )
            }
            Err(e) => {
                registry.init();
                (
                    Telemetry { provider: None },
                    Some(format!("OTLP trace export disabled: {e}")),
                )
            }
        }
    }

    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the exporter (blocking; call off the async runtime).
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            let _ = p.shutdown();
        }
    }
}
