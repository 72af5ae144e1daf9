//! Consent evaluation rule by rule, on the pure engine (`consent::evaluate`).

use medfabric_medical::consent::{
    Consent, ConsentTerms, Decision, Fee, Grantee, Period, Provision, Request, Rule, Status, Verdict,
    evaluate, template,
};
use medfabric_medical::identity::{Caller, Role};
use medfabric_medical::model::RecordMeta;

fn caller(msp: &str, id: &str, role: Role) -> Caller {
    Caller { msp_id: msp.into(), enrollment_id: id.into(), role }
}

fn record(class: &str, labels: &[&str]) -> RecordMeta {
    RecordMeta {
        record_id: "r1".into(),
        patient_id: "HospitalMSP/patient1".into(),
        custodian: "HospitalMSP".into(),
        resource_type: "Observation".into(),
        data_class: class.into(),
        security_labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        author: "HospitalMSP/drgrey".into(),
        version: 1,
        created_at: 0,
        updated_at: 0,
        commitment: "00".repeat(32),
        erased: false,
    }
}

fn consent(id: &str, terms: ConsentTerms) -> Consent {
    Consent {
        consent_id: id.into(),
        patient_id: "HospitalMSP/patient1".into(),
        version: 1,
        status: Status::Active,
        terms,
        recorded_by: "HospitalMSP/patient1".into(),
        evidence: None,
        time: 0,
        tx_id: "t".into(),
    }
}

fn permit(grantee: Grantee, rule: Rule) -> ConsentTerms {
    ConsentTerms {
        grantee,
        decision: Decision::Permit,
        rule,
        provisions: Vec::new(),
        fee: None,
        template: None,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn decide(consents: &[Consent], who: &Caller, purpose: &str, meta: &RecordMeta, time: u64) -> Verdict {
    evaluate(consents, &Request { caller: who, action: "access", purpose, record: meta, time })
}

fn permitted(v: &Verdict) -> bool {
    matches!(v, Verdict::Permit { .. })
}

#[test]
fn grantee_matches_actor_org_role_or_anyone() {
    let grey = caller("HospitalMSP", "drgrey", Role::Provider);
    let tech = caller("LabMSP", "tech1", Role::Provider);
    let sci = caller("ResearchMSP", "scientist1", Role::Researcher);
    let meta = record("lab", &["N"]);
    let by_actor = [consent("c", permit(Grantee::Actor("HospitalMSP/drgrey".into()), Rule::default()))];
    assert!(permitted(&decide(&by_actor, &grey, "TREAT", &meta, 0)));
    assert_eq!(decide(&by_actor, &tech, "TREAT", &meta, 0), Verdict::NoConsent);
    let by_org = [consent("c", permit(Grantee::Org("LabMSP".into()), Rule::default()))];
    assert!(permitted(&decide(&by_org, &tech, "TREAT", &meta, 0)));
    assert_eq!(decide(&by_org, &grey, "TREAT", &meta, 0), Verdict::NoConsent);
    let by_role = [consent("c", permit(Grantee::Role(Role::Researcher), Rule::default()))];
    assert!(permitted(&decide(&by_role, &sci, "HRESCH", &meta, 0)));
    assert_eq!(decide(&by_role, &grey, "TREAT", &meta, 0), Verdict::NoConsent);
    let anyone = [consent("c", permit(Grantee::Any, Rule::default()))];
    assert!(permitted(&decide(&anyone, &sci, "HRESCH", &meta, 0)));
}

#[test]
fn purpose_class_and_action_narrow_a_permit() {
    let sci = caller("ResearchMSP", "scientist1", Role::Researcher);
    let rule = Rule { purposes: strings(&["HRESCH"]), classes: strings(&["lab"]), ..Rule::default() };
    let consents = [consent("c", permit(Grantee::Role(Role::Researcher), rule))];
    assert!(permitted(&decide(&consents, &sci, "HRESCH", &record("lab", &[]), 0)));
    assert_eq!(decide(&consents, &sci, "TREAT", &record("lab", &[]), 0), Verdict::NoConsent, "other purpose");
    assert_eq!(
        decide(&consents, &sci, "HRESCH", &record("imaging", &[]), 0),
        Verdict::NoConsent,
        "other class"
    );
    // The FHIR resource type counts as a class too.
    let by_type =
        [consent("c", permit(Grantee::Any, Rule { classes: strings(&["Observation"]), ..Rule::default() }))];
    assert!(permitted(&decide(&by_type, &sci, "HRESCH", &record("imaging", &[]), 0)));
    let correct_only =
        [consent("c", permit(Grantee::Any, Rule { actions: strings(&["correct"]), ..Rule::default() }))];
    assert_eq!(
        decide(&correct_only, &sci, "HRESCH", &record("lab", &[]), 0),
        Verdict::NoConsent,
        "other action"
    );
}

#[test]
fn sensitive_labels_need_an_explicit_permit() {
    let grey = caller("HospitalMSP", "drgrey", Role::Provider);
    let general = [consent("c", permit(Grantee::Any, Rule::default()))];
    assert!(permitted(&decide(&general, &grey, "TREAT", &record("lab", &["N"]), 0)));
    assert_eq!(decide(&general, &grey, "TREAT", &record("lab", &["N", "HIV"]), 0), Verdict::NoConsent);
    assert_eq!(decide(&general, &grey, "TREAT", &record("lab", &["R"]), 0), Verdict::NoConsent);
    let hiv = [consent("c", permit(Grantee::Any, Rule { labels: strings(&["HIV"]), ..Rule::default() }))];
    assert!(permitted(&decide(&hiv, &grey, "TREAT", &record("lab", &["N", "HIV"]), 0)));
    assert_eq!(decide(&hiv, &grey, "TREAT", &record("lab", &["PSY"]), 0), Verdict::NoConsent);
    // A permit must name every sensitive label the record carries.
    assert_eq!(decide(&hiv, &grey, "TREAT", &record("lab", &["HIV", "PSY"]), 0), Verdict::NoConsent);
    let normal = [consent("c", permit(Grantee::Any, Rule { labels: strings(&["N"]), ..Rule::default() }))];
    assert_eq!(decide(&normal, &grey, "TREAT", &record("lab", &["N", "PSY"]), 0), Verdict::NoConsent);
    // A deny without labels covers sensitive records too: an opt-out beats a labelled permit.
    let mut both = hiv.to_vec();
    both.push(consent("d", template("opt-out", None, Vec::new(), None).expect("template")));
    assert!(matches!(decide(&both, &grey, "TREAT", &record("lab", &["HIV"]), 0), Verdict::Deny { .. }));
}

#[test]
fn a_deny_among_sibling_provisions_wins() {
    let sci = caller("ResearchMSP", "scientist1", Role::Researcher);
    let mut terms = permit(Grantee::Any, Rule::default());
    terms.provisions = vec![
        Provision {
            decision: Decision::Deny,
            actors: Vec::new(),
            rule: Rule { purposes: strings(&["HRESCH"]), ..Rule::default() },
            provisions: Vec::new(),
        },
        Provision {
            decision: Decision::Permit,
            actors: vec![Grantee::Actor("ResearchMSP/scientist1".into())],
            rule: Rule::default(),
            provisions: Vec::new(),
        },
    ];
    let consents = [consent("c", terms)];
    assert!(matches!(decide(&consents, &sci, "HRESCH", &record("lab", &[]), 0), Verdict::Deny { .. }));
    assert!(permitted(&decide(&consents, &sci, "TREAT", &record("lab", &[]), 0)));
}

#[test]
fn the_period_bounds_are_inclusive() {
    let grey = caller("HospitalMSP", "drgrey", Role::Provider);
    let rule = Rule { period: Some(Period { start: Some(100), end: Some(200) }), ..Rule::default() };
    let consents = [consent("c", permit(Grantee::Any, rule))];
    let meta = record("lab", &[]);
    assert_eq!(decide(&consents, &grey, "TREAT", &meta, 99), Verdict::NoConsent, "before the start");
    assert!(permitted(&decide(&consents, &grey, "TREAT", &meta, 100)));
    assert!(permitted(&decide(&consents, &grey, "TREAT", &meta, 200)));
    assert_eq!(decide(&consents, &grey, "TREAT", &meta, 201), Verdict::NoConsent, "after the end");
}

#[test]
fn nested_provisions_override_their_parent() {
    let grey = caller("HospitalMSP", "drgrey", Role::Provider);
    let tech = caller("LabMSP", "tech1", Role::Provider);
    // Permit everyone, except the lab for mental-health data, except (again) its TREAT use.
    let mut terms = permit(Grantee::Any, Rule::default());
    terms.provisions = vec![Provision {
        decision: Decision::Deny,
        actors: vec![Grantee::Org("LabMSP".into())],
        rule: Rule { classes: strings(&["mental-health"]), ..Rule::default() },
        provisions: vec![Provision {
            decision: Decision::Permit,
            actors: Vec::new(),
            rule: Rule { purposes: strings(&["TREAT"]), ..Rule::default() },
            provisions: Vec::new(),
        }],
    }];
    let consents = [consent("c", terms)];
    let mh = record("mental-health", &[]);
    assert!(permitted(&decide(&consents, &grey, "HOPERAT", &mh, 0)), "the deny names the lab only");
    assert!(matches!(decide(&consents, &tech, "HOPERAT", &mh, 0), Verdict::Deny { .. }), "nested deny");
    assert!(permitted(&decide(&consents, &tech, "TREAT", &mh, 0)), "the exception to the exception");
    assert!(permitted(&decide(&consents, &tech, "HOPERAT", &record("lab", &[]), 0)), "other classes");
}

#[test]
fn deny_overrides_permit_and_revoked_consents_do_not_apply() {
    let sci = caller("ResearchMSP", "scientist1", Role::Researcher);
    let meta = record("lab", &[]);
    let opt_out = consent("a-opt-out", template("opt-out", None, Vec::new(), None).expect("template"));
    let research = consent(
        "b-research",
        template("research-opt-in", Some(Grantee::Role(Role::Researcher)), Vec::new(), None)
            .expect("template"),
    );
    let both = [research.clone(), opt_out.clone()];
    assert_eq!(decide(&both, &sci, "HRESCH", &meta, 0), Verdict::Deny { consent: "a-opt-out@1".into() });
    let mut revoked = opt_out;
    revoked.status = Status::Revoked;
    revoked.version = 2;
    let verdict = decide(&[research, revoked], &sci, "HRESCH", &meta, 0);
    assert_eq!(verdict, Verdict::Permit { consent: "b-research@1".into(), fee: None });
}

#[test]
fn templates_say_what_their_names_say() {
    let grey = caller("HospitalMSP", "drgrey", Role::Provider);
    let sci = caller("ResearchMSP", "scientist1", Role::Researcher);
    let meta = record("lab", &[]);
    let opt_in = [consent(
        "c",
        template("opt-in", Some(Grantee::Org("HospitalMSP".into())), Vec::new(), None).expect("template"),
    )];
    assert!(permitted(&decide(&opt_in, &grey, "TREAT", &meta, 0)));
    assert!(permitted(&decide(&opt_in, &grey, "HPAYMT", &meta, 0)));
    assert_eq!(decide(&opt_in, &grey, "HRESCH", &meta, 0), Verdict::NoConsent, "no research under opt-in");
    let fee = Fee { amount: 500, custodian_share_bps: 2000 };
    let research = [consent(
        "c",
        template(
            "research-opt-in",
            Some(Grantee::Actor("ResearchMSP/scientist1".into())),
            strings(&["lab"]),
            Some(fee),
        )
        .expect("template"),
    )];
    assert_eq!(
        decide(&research, &sci, "HRESCH", &meta, 0),
        Verdict::Permit { consent: "c@1".into(), fee: Some(fee) },
        "the fee comes with the permit"
    );
    assert_eq!(decide(&research, &sci, "HRESCH", &record("imaging", &[]), 0), Verdict::NoConsent);
    let emergency = [consent("c", template("emergency-only", None, Vec::new(), None).expect("template"))];
    assert!(permitted(&decide(&emergency, &grey, "ETREAT", &meta, 0)));
    assert_eq!(decide(&emergency, &grey, "TREAT", &meta, 0), Verdict::NoConsent);
    assert_eq!(decide(&emergency, &sci, "ETREAT", &meta, 0), Verdict::NoConsent, "providers only");
    assert!(template("research-opt-in", None, Vec::new(), None).is_err(), "needs a grantee");
    assert!(template("nonsense", None, Vec::new(), None).is_err());
}

#[test]
fn bad_terms_are_refused() {
    let mut terms = permit(Grantee::Any, Rule { purposes: strings(&["FUN"]), ..Rule::default() });
    assert!(terms.check().expect_err("refused").message.contains("unknown purpose"));
    terms.rule = Rule { period: Some(Period { start: Some(10), end: Some(5) }), ..Rule::default() };
    assert!(terms.check().expect_err("refused").message.contains("ends before it starts"));
    terms.rule = Rule::default();
    terms.fee = Some(Fee { amount: 1, custodian_share_bps: 10_001 });
    assert!(terms.check().is_err());
    let bad_actor = permit(Grantee::Actor("nobody".into()), Rule::default());
    assert!(bad_actor.check().expect_err("refused").message.contains("MSPID/enrollmentID"));
}
