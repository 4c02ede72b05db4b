//! The v1/v2 schema pairs of `rpc-codegen/tests/data/breaking/`, each
//! version's jobs with the Rust types generated for them.

use compat_proof::*;
use rpc_runtime::Never;

use super::glue::{answering, one_way, Glue};

/// Every pair: its name and the jobs of each version.
pub fn pairs() -> Vec<(&'static str, Vec<Glue>, Vec<Glue>)> {
    use answering as a;
    vec![
        (
            "removed_service",
            vec![
                a::<removed_service_v1::SXRequest, i64, Never>("S", "x"),
                a::<removed_service_v1::KKRequest, bool, Never>("K", "k"),
            ],
            vec![a::<removed_service_v2::KKRequest, bool, Never>("K", "k")],
        ),
        (
            "renamed_service",
            vec![a::<renamed_service_v1::SXRequest, i64, Never>("S", "x")],
            vec![a::<renamed_service_v2::RXRequest, i64, Never>("R", "x")],
        ),
        (
            "removed_job",
            vec![
                a::<removed_job_v1::SXRequest, i64, Never>("S", "x"),
                a::<removed_job_v1::SYRequest, bool, Never>("S", "y"),
            ],
            vec![a::<removed_job_v2::SYRequest, bool, Never>("S", "y")],
        ),
        (
            "renamed_job",
            vec![a::<renamed_job_v1::SXRequest, i64, Never>("S", "x")],
            vec![a::<renamed_job_v2::SZRequest, i64, Never>("S", "z")],
        ),
        (
            "renamed_job_kept",
            vec![a::<renamed_job_kept_v1::SXRequest, i64, Never>("S", "x")],
            vec![a::<renamed_job_kept_v2::SZRequest, i64, Never>("S", "x")],
        ),
        (
            "new_job",
            vec![a::<new_job_v1::SXRequest, i64, Never>("S", "x")],
            vec![
                a::<new_job_v2::SXRequest, i64, Never>("S", "x"),
                a::<new_job_v2::SYRequest, bool, Never>("S", "y"),
            ],
        ),
        (
            "new_required_param",
            vec![a::<new_required_param_v1::SXRequest, i64, Never>("S", "x")],
            vec![a::<new_required_param_v2::SXRequest, i64, Never>("S", "x")],
        ),
        (
            "new_optional_param",
            vec![a::<new_optional_param_v1::SXRequest, i64, Never>("S", "x")],
            vec![a::<new_optional_param_v2::SXRequest, i64, Never>("S", "x")],
        ),
        (
            "removed_param",
            vec![a::<removed_param_v1::SXRequest, i64, Never>("S", "x")],
            vec![a::<removed_param_v2::SXRequest, i64, Never>("S", "x")],
        ),
        (
            "renamed_param",
            vec![a::<renamed_param_v1::SXRequest, i64, Never>("S", "x")],
            vec![a::<renamed_param_v2::SXRequest, i64, Never>("S", "x")],
        ),
        (
            "renamed_param_kept",
            vec![a::<renamed_param_kept_v1::SXRequest, i64, Never>("S", "x")],
            vec![a::<renamed_param_kept_v2::SXRequest, i64, Never>("S", "x")],
        ),
        (
            "optional_to_required",
            vec![a::<optional_to_required_v1::SXRequest, i64, Never>(
                "S", "x",
            )],
            vec![a::<optional_to_required_v2::SXRequest, i64, Never>(
                "S", "x",
            )],
        ),
        (
            "required_to_optional",
            vec![a::<required_to_optional_v1::SXRequest, i64, Never>(
                "S", "x",
            )],
            vec![a::<required_to_optional_v2::SXRequest, i64, Never>(
                "S", "x",
            )],
        ),
        (
            "widened_param",
            vec![a::<widened_param_v1::SXRequest, bool, Never>("S", "x")],
            vec![a::<widened_param_v2::SXRequest, bool, Never>("S", "x")],
        ),
        (
            "widened_result",
            vec![a::<widened_result_v1::SXRequest, i32, Never>("S", "x")],
            vec![a::<widened_result_v2::SXRequest, i64, Never>("S", "x")],
        ),
        (
            "int_to_float_param",
            vec![a::<int_to_float_param_v1::SXRequest, bool, Never>("S", "x")],
            vec![a::<int_to_float_param_v2::SXRequest, bool, Never>("S", "x")],
        ),
        (
            "json_param",
            vec![a::<json_param_v1::SXRequest, bool, Never>("S", "x")],
            vec![a::<json_param_v2::SXRequest, bool, Never>("S", "x")],
        ),
        (
            "changed_type",
            vec![a::<changed_type_v1::SXRequest, bool, Never>("S", "x")],
            vec![a::<changed_type_v2::SXRequest, bool, Never>("S", "x")],
        ),
        (
            "new_variant_param",
            vec![a::<new_variant_param_v1::SXRequest, bool, Never>("S", "x")],
            vec![a::<new_variant_param_v2::SXRequest, bool, Never>("S", "x")],
        ),
        (
            "new_variant_result",
            vec![a::<
                new_variant_result_v1::SXRequest,
                new_variant_result_v1::E,
                Never,
            >("S", "x")],
            vec![a::<
                new_variant_result_v2::SXRequest,
                new_variant_result_v2::E,
                Never,
            >("S", "x")],
        ),
        (
            "removed_variant",
            vec![a::<removed_variant_v1::SXRequest, bool, Never>("S", "x")],
            vec![a::<removed_variant_v2::SXRequest, bool, Never>("S", "x")],
        ),
        (
            "renamed_variant",
            vec![a::<renamed_variant_v1::SXRequest, bool, Never>("S", "x")],
            vec![a::<renamed_variant_v2::SXRequest, bool, Never>("S", "x")],
        ),
        (
            "renamed_variant_kept",
            vec![a::<renamed_variant_kept_v1::SXRequest, bool, Never>(
                "S", "x",
            )],
            vec![a::<renamed_variant_kept_v2::SXRequest, bool, Never>(
                "S", "x",
            )],
        ),
        (
            "renamed_field",
            vec![a::<renamed_field_v1::SXRequest, bool, Never>("S", "x")],
            vec![a::<renamed_field_v2::SXRequest, bool, Never>("S", "x")],
        ),
        (
            "renamed_type",
            vec![a::<renamed_type_v1::SXRequest, renamed_type_v1::T, Never>(
                "S", "x",
            )],
            vec![a::<renamed_type_v2::SXRequest, renamed_type_v2::U, Never>(
                "S", "x",
            )],
        ),
        (
            "removed_result_field",
            vec![a::<
                removed_result_field_v1::SXRequest,
                removed_result_field_v1::T,
                Never,
            >("S", "x")],
            vec![a::<
                removed_result_field_v2::SXRequest,
                removed_result_field_v2::T,
                Never,
            >("S", "x")],
        ),
        (
            "removed_optional_field",
            vec![a::<
                removed_optional_field_v1::SXRequest,
                removed_optional_field_v1::T,
                Never,
            >("S", "x")],
            vec![a::<
                removed_optional_field_v2::SXRequest,
                removed_optional_field_v2::T,
                Never,
            >("S", "x")],
        ),
        (
            "new_optional_field",
            vec![a::<
                new_optional_field_v1::SXRequest,
                new_optional_field_v1::T,
                Never,
            >("S", "x")],
            vec![a::<
                new_optional_field_v2::SXRequest,
                new_optional_field_v2::T,
                Never,
            >("S", "x")],
        ),
        (
            "reply_to_one_way",
            vec![a::<reply_to_one_way_v1::SXRequest, i64, Never>("S", "x")],
            vec![one_way::<reply_to_one_way_v2::SXRequest>("S", "x")],
        ),
        (
            "one_way_to_reply",
            vec![one_way::<one_way_to_reply_v1::SXRequest>("S", "x")],
            vec![a::<one_way_to_reply_v2::SXRequest, i64, Never>("S", "x")],
        ),
        (
            "added_error_type",
            vec![a::<added_error_type_v1::SXRequest, i64, Never>("S", "x")],
            vec![a::<
                added_error_type_v2::SXRequest,
                i64,
                added_error_type_v2::E,
            >("S", "x")],
        ),
        (
            "removed_error_type",
            vec![a::<
                removed_error_type_v1::SXRequest,
                i64,
                removed_error_type_v1::E,
            >("S", "x")],
            vec![a::<removed_error_type_v2::SXRequest, i64, Never>("S", "x")],
        ),
        (
            "new_error_variant",
            vec![a::<
                new_error_variant_v1::SXRequest,
                i64,
                new_error_variant_v1::E,
            >("S", "x")],
            vec![a::<
                new_error_variant_v2::SXRequest,
                i64,
                new_error_variant_v2::E,
            >("S", "x")],
        ),
        (
            "changed_timeout",
            vec![a::<changed_timeout_v1::SXRequest, i64, Never>("S", "x")],
            vec![a::<changed_timeout_v2::SXRequest, i64, Never>("S", "x")],
        ),
    ]
}
