//! A plan whose second copy is object storage on the real S3 server (Garage,
//! started by scripts/test.sh): run, drill from the bucket, and status facts
//! (object storage on this host is its own medium but never off-site).

use crate::common::plans::*;
use crate::common::*;

#[test]
fn a_plan_copies_to_s3_drills_from_it_and_status_judges_the_bucket_by_facts() {
    let p = Plans::new("");
    let cloud = s3::unique_location("plan");
    p.init_related(&cloud);
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"to the cloud\n");
    write(&src.join("big.bin"), &random_bytes(3 << 20, 9));
    p.replace("listen = \"off\"", "listen = \"off\"\nsite = \"dc1\"");
    p.add(&format!(
        "[repository.cloud]\nurl = \"{cloud}\"\npassword_file = \"{}\"\nsite = \"cloud-us-east\"\n\
         [plan.files]\npaths = [\"{}\"]\ncopies = [\"local\", \"cloud\"]\nrpo = \"1h\"\nrto = \"1h\"\n",
        p.env.path("pass").display(),
        src.display()
    ));
    let (out, _) = p.expect(&["run", "files"], 0);
    assert!(out.contains("copy      cloud: success"), "{out}");
    let (out, _) = p.expect(&["drill", "files", "--copy", "cloud"], 0);
    assert!(
        out.contains("drill of plan files from cloud: snapshot"),
        "{out}"
    );

    let o = p.run(&["status", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "not off-site: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plan = &v["plans"][0];
    let c = &plan["copies"][1];
    assert_eq!(c["name"], "cloud");
    assert_eq!(c["place"]["kind"], "object");
    assert_eq!(c["place"]["on_this_host"], true);
    assert_eq!(c["rpo_met"], true);
    let rules = plan["three_two_one"]["rules"].as_array().unwrap();
    assert_eq!(rules[0]["held"], true, "{rules:?}");
    assert_eq!(
        rules[1]["held"], true,
        "the bucket is a medium of its own: {rules:?}"
    );
    assert_eq!(rules[2]["held"], false);
    assert!(
        rules[2]["detail"].as_str().unwrap().contains(
            "cloud is object storage on this host (127.0.0.1), whatever its declared site says"
        ),
        "{rules:?}"
    );
    let reached: Vec<u64> = plan["roadmap"]["reached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert!(
        reached.contains(&6),
        "an object-storage copy within the RPO: {reached:?}"
    );
    assert!(!reached.contains(&3), "{reached:?}");
    assert!(plan["last_drill"]["rta_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(plan["last_drill"]["rto_met"], true);
}
