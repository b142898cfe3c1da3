//! The one integration-test binary: each module covers one part of the product.

mod util;

mod audio_files;
mod beats_parity;
mod birdnet;
mod capture;
mod cli;
mod clips;
mod demo_scene;
mod embed;
mod fbank_parity;
mod int8_kernel;
mod kernels;
mod levels;
mod metrics;
mod model_parity;
mod model_thresholds;
mod mqtt;
mod mqtt_outage;
mod outbox_disk;
mod own_sounds;
mod pipeline_run;
mod report;
mod signals;
mod sources;
mod streaming;
mod tools;
mod vendored_tract;
mod waveform;
mod web;
