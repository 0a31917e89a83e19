//! `berth pod …` and `berth kube …`: what docker has no verb for, as clients of berth's
//! socket (the libpod endpoints podman uses), for users without podman.

pub mod client;

use std::io::Read;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use client::{Client, enc};

#[derive(Subcommand)]
pub enum PodCommand {
    /// Make a pod: an infra container holding the shared namespaces and the published ports.
    Create {
        #[arg(long)]
        name: Option<String>,
        /// hostPort:containerPort[/protocol], or ip:hostPort:containerPort[/protocol].
        #[arg(short = 'p', long = "publish")]
        publish: Vec<String>,
        /// key=value
        #[arg(short = 'l', long = "label")]
        label: Vec<String>,
        #[arg(long)]
        hostname: Option<String>,
        /// No infra container (then nothing is shared and no port can be published).
        #[arg(long)]
        no_infra: bool,
    },
    /// List pods.
    #[command(alias = "ls", alias = "list")]
    Ps {
        /// Print the JSON as berth answers it.
        #[arg(long)]
        json: bool,
    },
    /// Show pods as JSON.
    Inspect {
        names: Vec<String>,
    },
    Start {
        names: Vec<String>,
    },
    Stop {
        /// Seconds each container gets before it is killed (default: its own stop timeout).
        #[arg(short = 't', long = "time")]
        time: Option<i64>,
        names: Vec<String>,
    },
    /// Remove pods and their containers.
    Rm {
        /// Stop running containers first.
        #[arg(short = 'f', long)]
        force: bool,
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum KubeCommand {
    /// Kubernetes YAML of pods or containers.
    Generate {
        /// Also a NodePort Service for the published ports.
        #[arg(short = 's', long)]
        service: bool,
        /// `pod` or `deployment`.
        #[arg(long = "type", default_value = "pod")]
        kind: String,
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        names: Vec<String>,
    },
    /// Make the pods, volumes and containers a Kubernetes YAML file describes (`-` = stdin).
    Play { file: String },
    /// Remove what `play` made from this file.
    Down { file: String },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn port_mapping(spec: &str) -> Result<Value> {
    let (rest, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [i, h, c] => (*i, *h, *c),
        _ => bail!("invalid port mapping {spec:?}: want [ip:]hostPort:containerPort[/protocol]"),
    };
    let num = |s: &str| -> Result<u16> {
        if s.is_empty() {
            return Ok(0);
        }
        s.parse()
            .with_context(|| format!("invalid port {s:?} in {spec:?}"))
    };
    Ok(
        json!({"host_ip": ip, "host_port": num(host)?, "container_port": num(ctr)?, "range": 1, "protocol": proto}),
    )
}

pub fn pod(host: Option<&str>, cmd: PodCommand) -> Result<()> {
    let client = Client::new(client::default_socket(host));
    runtime()?.block_on(async move {
        match cmd {
            PodCommand::Create {
                name,
                publish,
                label,
                hostname,
                no_infra,
            } => {
                let mut labels = serde_json::Map::new();
                for l in &label {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    labels.insert(k.into(), json!(v));
                }
                let ports = publish
                    .iter()
                    .map(|p| port_mapping(p))
                    .collect::<Result<Vec<_>>>()?;
                let mut body = json!({
                    "name": name.unwrap_or_default(),
                    "labels": labels,
                    "portmappings": ports,
                    "no_infra": no_infra,
                    "pod_create_command": std::env::args().collect::<Vec<_>>(),
                });
                if let Some(h) = hostname {
                    body["hostname"] = json!(h);
                }
                if no_infra {
                    body["shared_namespaces"] = json!([]);
                }
                let v = client
                    .json(Method::POST, "/libpod/pods/create", Some(&body))
                    .await?;
                println!("{}", v["Id"].as_str().unwrap_or_default());
            }
            PodCommand::Ps { json } => {
                let v = client.json(Method::GET, "/libpod/pods/json", None).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!(
                        "{:<14}{:<24}{:<12}{:<14}# OF CONTAINERS",
                        "POD ID", "NAME", "STATUS", "INFRA ID"
                    );
                    for p in v.as_array().into_iter().flatten() {
                        let short = |k: &str| {
                            p[k].as_str()
                                .unwrap_or("")
                                .chars()
                                .take(12)
                                .collect::<String>()
                        };
                        println!(
                            "{:<14}{:<24}{:<12}{:<14}{}",
                            short("Id"),
                            p["Name"].as_str().unwrap_or(""),
                            p["Status"].as_str().unwrap_or(""),
                            short("InfraId"),
                            p["Containers"].as_array().map_or(0, |c| c.len())
                        );
                    }
                }
            }
            PodCommand::Inspect { names } => {
                let mut out = Vec::new();
                for n in &names {
                    out.push(
                        client
                            .json(Method::GET, &format!("/libpod/pods/{}/json", enc(n)), None)
                            .await?,
                    );
                }
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            PodCommand::Start { names } => {
                for n in &names {
                    client
                        .call(
                            Method::POST,
                            &format!("/libpod/pods/{}/start", enc(n)),
                            None,
                        )
                        .await?;
                    println!("{n}");
                }
            }
            PodCommand::Stop { time, names } => {
                for n in &names {
                    let t = time.map(|t| format!("?timeout={t}")).unwrap_or_default();
                    client
                        .call(
                            Method::POST,
                            &format!("/libpod/pods/{}/stop{t}", enc(n)),
                            None,
                        )
                        .await?;
                    println!("{n}");
                }
            }
            PodCommand::Rm { force, names } => {
                for n in &names {
                    let v = client
                        .json(
                            Method::DELETE,
                            &format!("/libpod/pods/{}?force={force}", enc(n)),
                            None,
                        )
                        .await?;
                    println!("{}", v["Id"].as_str().unwrap_or(n));
                }
            }
        }
        Ok(())
    })
}

fn read_file(file: &str) -> Result<Vec<u8>> {
    if file == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b)?;
        return Ok(b);
    }
    std::fs::read(file).with_context(|| format!("reading {file}"))
}

fn names_of(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["ID"].as_str().or(x["Id"].as_str()).map(String::from))
        .collect()
}

pub fn kube(host: Option<&str>, cmd: KubeCommand) -> Result<()> {
    let client = Client::new(client::default_socket(host));
    runtime()?.block_on(async move {
        match cmd {
            KubeCommand::Generate {
                service,
                kind,
                replicas,
                names,
            } => {
                if names.is_empty() {
                    bail!("name the pods or containers to generate YAML for");
                }
                let q: Vec<String> = names.iter().map(|n| format!("names={}", enc(n))).collect();
                let path = format!(
                    "/libpod/generate/kube?{}&service={service}&type={}&replicas={replicas}",
                    q.join("&"),
                    enc(&kind)
                );
                let (_, body) = client.call(Method::GET, &path, None).await?;
                print!("{}", String::from_utf8_lossy(&body));
            }
            KubeCommand::Play { file } => {
                let yaml = read_file(&file)?;
                let (status, body) = client
                    .call(
                        Method::POST,
                        "/libpod/play/kube",
                        Some((yaml, "application/yaml")),
                    )
                    .await?;
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                for w in v["Warnings"].as_array().into_iter().flatten() {
                    eprintln!("warning: {}", w.as_str().unwrap_or_default());
                }
                for p in v["Pods"].as_array().into_iter().flatten() {
                    println!("Pod:\n{}", p["ID"].as_str().unwrap_or_default());
                    println!("Containers:");
                    for c in p["Containers"].as_array().into_iter().flatten() {
                        println!("{}", c.as_str().unwrap_or_default());
                    }
                }
                for vol in v["Volumes"].as_array().into_iter().flatten() {
                    println!("Volume:\n{}", vol["Name"].as_str().unwrap_or_default());
                }
                if status != StatusCode::OK {
                    bail!("play failed");
                }
            }
            KubeCommand::Down { file } => {
                let yaml = read_file(&file)?;
                let (_, body) = client
                    .call(
                        Method::DELETE,
                        "/libpod/play/kube",
                        Some((yaml, "application/yaml")),
                    )
                    .await?;
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                let removed = names_of(&v, "RmReport");
                println!("Pods removed:");
                for id in removed {
                    println!("{id}");
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        let v = port_mapping("8080:80").unwrap();
        assert_eq!(
            (v["host_port"].as_u64(), v["container_port"].as_u64()),
            (Some(8080), Some(80))
        );
        let v = port_mapping("127.0.0.1:53:53/udp").unwrap();
        assert_eq!(
            (v["host_ip"].as_str(), v["protocol"].as_str()),
            (Some("127.0.0.1"), Some("udp"))
        );
        assert!(port_mapping("a:b").is_err());
        assert!(port_mapping("1:2:3:4").is_err());
    }
}
