//! Serves a simulated Salesforce org until Ctrl-C, for checking the simulator with
//! other tools (jsforce, simple-salesforce, curl). Prints the instance URL and a
//! pre-issued session token.
//!
//! Run: `cargo run -p leadroute-sim --example salesforce_serve -- [PORT] [TOKEN] [CERT_PEM_FILE]`
//! (the certificate enables the JWT bearer flow).

use leadroute_sim::salesforce::{self, SalesforceSimConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port = args.next().map(|p| p.parse()).transpose()?.unwrap_or(0);
    let token = args
        .next()
        .unwrap_or_else(|| "00D8d000000Sim0!sim-session".to_owned());
    let jwt_certificate_pem = args.next().map(std::fs::read_to_string).transpose()?;
    let sim = salesforce::spawn(SalesforceSimConfig {
        port,
        pre_issued_token: Some(token.clone()),
        jwt_certificate_pem,
        ..SalesforceSimConfig::default()
    })
    .await?;
    println!("instance_url={}", sim.base_url());
    println!("token={token}");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
