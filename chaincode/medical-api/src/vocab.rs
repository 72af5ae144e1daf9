//! The fixed, public vocabularies of record metadata: free text there could name a
//! condition.

/// Data classes a record may have. They are public (consent matches on them when an access
/// is requested), so none names a condition: a condition is a sensitive label, which stays
/// with the custodian.
pub const DATA_CLASSES: [&str; 14] = [
    "lab",
    "imaging",
    "vitals",
    "medication",
    "immunization",
    "allergy",
    "procedure",
    "encounter",
    "note",
    "document",
    "problem",
    "genomic",
    "device",
    "administrative",
];

/// FHIR resource types a record may have (public too: kinds of record, not conditions).
pub const RESOURCE_TYPES: [&str; 20] = [
    "Observation",
    "DiagnosticReport",
    "Condition",
    "Procedure",
    "MedicationStatement",
    "MedicationRequest",
    "MedicationAdministration",
    "Immunization",
    "AllergyIntolerance",
    "Encounter",
    "DocumentReference",
    "ImagingStudy",
    "Specimen",
    "CarePlan",
    "CareTeam",
    "FamilyMemberHistory",
    "QuestionnaireResponse",
    "Composition",
    "Device",
    "Claim",
];

/// Security labels a record may carry (HL7 v3 confidentiality and sensitivity codes).
pub const CONFIDENTIALITY: [&str; 5] = ["U", "L", "M", "N", "R"];

pub const SENSITIVE: [&str; 9] = ["V", "ETH", "HIV", "PSY", "SUD", "SDV", "SEX", "STD", "GDIS"];
