//! Serves a simulated HubSpot portal or Salesforce org until Ctrl-C, for checking the
//! simulators with other tools (vendor client libraries, jsforce, curl). Prints the
//! base URL, a token and, with `--tls`, the path of the CA certificate file clients
//! must trust (e.g. `REQUESTS_CA_BUNDLE`).
//!
//! Run: `cargo run -p leadroute-sim --example serve -- hubspot|salesforce [--tls]
//! [--port N] [--token T] [--ca-out FILE] [--jwt-cert PEM_FILE]`
//! (`--token` sets Salesforce's pre-issued session; `--jwt-cert` enables Salesforce's
//! JWT bearer flow; `--ca-out` defaults to a file in the temp directory.)

use std::path::PathBuf;

use leadroute_sim::{hubspot, salesforce};

struct Args {
    kind: String,
    tls: bool,
    port: u16,
    token: Option<String>,
    ca_out: Option<PathBuf>,
    jwt_cert: Option<PathBuf>,
}

const USAGE: &str = "usage: serve hubspot|salesforce [--tls] [--port N] [--token T] [--ca-out FILE] [--jwt-cert PEM_FILE]";

fn parse() -> Result<Args, String> {
    let mut raw = std::env::args().skip(1);
    let kind = raw.next().ok_or(USAGE)?;
    if kind != "hubspot" && kind != "salesforce" {
        return Err(format!("unknown simulator {kind:?}; {USAGE}"));
    }
    let mut args = Args {
        kind,
        tls: false,
        port: 0,
        token: None,
        ca_out: None,
        jwt_cert: None,
    };
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().ok_or(format!("{flag} needs a value; {USAGE}"));
        match flag.as_str() {
            "--tls" => args.tls = true,
            "--port" => {
                args.port = value()?
                    .parse()
                    .map_err(|e| format!("--port: {e}; {USAGE}"))?;
            }
            "--token" => args.token = Some(value()?),
            "--ca-out" => args.ca_out = Some(PathBuf::from(value()?)),
            "--jwt-cert" => args.jwt_cert = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown option {other:?}; {USAGE}")),
        }
    }
    Ok(args)
}

/// Writes the CA certificate where clients can point at it and prints the path.
fn write_ca(args: &Args, ca_pem: Option<String>) -> std::io::Result<()> {
    let Some(pem) = ca_pem else { return Ok(()) };
    let path = args.ca_out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("leadroute-{}-sim-ca.pem", args.kind))
    });
    std::fs::write(&path, pem)?;
    println!("ca_file={}", path.display());
    Ok(())
}

/// The simulated OAuth app (simulator defaults, not real secrets), for token-flow checks.
fn print_oauth_app(client_id: &str, client_secret: &str, refresh_token: &str) {
    println!("client_id={client_id}");
    println!("client_secret={client_secret}");
    println!("refresh_token={refresh_token}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    if args.kind == "hubspot" {
        let mut config = hubspot::HubSpotSimConfig {
            port: args.port,
            tls: args.tls,
            ..hubspot::HubSpotSimConfig::default()
        };
        if let Some(token) = &args.token {
            config.token.clone_from(token);
        }
        let sim = hubspot::spawn(config).await?;
        println!("base_url={}", sim.base_url());
        println!("token={}", sim.token());
        print_oauth_app(
            &sim.config().client_id,
            &sim.config().client_secret,
            &sim.config().refresh_token,
        );
        write_ca(&args, sim.ca_pem())?;
        println!("ready");
        tokio::signal::ctrl_c().await?;
        sim.shutdown().await;
    } else {
        let token = args
            .token
            .clone()
            .unwrap_or_else(|| "00D8d000000Sim0!sim-session".to_owned());
        let jwt_certificate_pem = args
            .jwt_cert
            .as_ref()
            .map(std::fs::read_to_string)
            .transpose()?;
        let config = salesforce::SalesforceSimConfig {
            port: args.port,
            tls: args.tls,
            pre_issued_token: Some(token.clone()),
            jwt_certificate_pem,
            ..salesforce::SalesforceSimConfig::default()
        };
        let (client_id, client_secret, refresh_token) = (
            config.client_id.clone(),
            config.client_secret.clone(),
            config.refresh_token.clone(),
        );
        let sim = salesforce::spawn(config).await?;
        println!("base_url={}", sim.base_url());
        println!("instance_url={}", sim.base_url());
        println!("token={token}");
        print_oauth_app(&client_id, &client_secret, &refresh_token);
        write_ca(&args, sim.ca_pem())?;
        println!("ready");
        tokio::signal::ctrl_c().await?;
        sim.shutdown().await;
    }
    Ok(())
}
