//! The client side of a service: a `JobSpec` constant per job and the typed
//! clients `<Service>Client` (wraps `rpc_runtime.Client`) and
//! `Async<Service>Client` (wraps `rpc_runtime.AsyncClient`).

use super::codec::{annotation, optional_inner, reader, writer};
use super::names::{self, client_methods, Names};
use super::types::{deprecation, params_class_name};
use super::{string, Code};
use crate::model::{Job, ModuleId, Returns, Service};

/// The Python type of a job's result (`None` for a one-way job).
pub(crate) fn result_type(names: &Names<'_>, id: ModuleId, job: &Job) -> String {
    match &job.returns {
        Returns::Nothing => "None".into(),
        Returns::Value(ty) | Returns::Result { ok: ty, .. } => annotation(names.schema(), id, ty),
    }
}

/// `CALCULATOR_ADD: rpc_runtime.JobSpec[int] = rpc_runtime.JobSpec(...)`.
pub(crate) fn specs(code: &mut Code, names: &Names<'_>, id: ModuleId, service: &Service) {
    let schema = names.schema();
    code.blank();
    for job in &service.jobs {
        let constant = names::constant(&service.schema_name, &job.schema_name);
        let result = result_type(names, id, job);
        code.blank();
        code.line(format!(
            "{constant}: rpc_runtime.JobSpec[{result}] = rpc_runtime.JobSpec("
        ));
        code.indented(|code| {
            code.line(format!("service={},", string(&service.wire)));
            code.line(format!("name={},", string(&job.wire)));
            match &job.returns {
                Returns::Nothing => {
                    code.line("one_way=True,");
                    code.line("decode_result=_codec.no_result,");
                }
                Returns::Value(ty) | Returns::Result { ok: ty, .. } => {
                    code.line(format!(
                        "decode_result=_codec.result_reader({}),",
                        reader(schema, id, ty)
                    ));
                    code.line(format!(
                        "encode_result=_codec.result_writer({}),",
                        writer(schema, id, ty)
                    ));
                }
            }
            if let Returns::Result { err, .. } = &job.returns {
                let class = super::codec::class_ref(schema, id, *err);
                code.line(format!("decode_error={class}Exception.from_error_json,"));
            }
            if service.shards > 1 {
                code.line(format!("shards={},", service.shards));
            }
            if let Some(ms) = job.timeout_ms {
                code.line(format!("timeout_ms={ms},"));
            }
            if let Some(n) = job.attempts {
                code.line(format!("max_attempts={n},"));
            }
            if let Some(b) = &job.backoff {
                code.line(format!("backoff={},", string(&b.to_string())));
            }
            if let Some(r) = &job.rate {
                code.line(format!("rate={},", string(&r.to_string())));
            }
            if let Some(r) = &service.rate {
                code.line(format!("service_rate={},", string(&r.to_string())));
            }
            if let Some(p) = job.priority {
                code.line(format!("priority={p},"));
            }
            if let Some(d) = &job.deprecated {
                code.line(format!(
                    "deprecated={},",
                    string(d.note.as_deref().unwrap_or(""))
                ));
            }
        });
        code.line(")");
        let mut doc = vec![format!("Job `{}.{}`", service.wire, job.wire)];
        if let Some(first) = job.docs.first() {
            doc[0].push_str(&format!(":{}", first));
        } else {
            doc[0].push('.');
        }
        code.docstring(&[], &doc);
    }
}

/// The parameters of a method: `, a: int, b: int`. With `defaults`, the
/// `Option` parameters after the last required one default to None.
pub(crate) fn params_signature(
    names: &Names<'_>,
    id: ModuleId,
    job: &Job,
    defaults: bool,
) -> String {
    let last_required = job
        .params
        .iter()
        .rposition(|p| optional_inner(&p.ty).is_none());
    job.params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let default = if defaults && last_required.is_none_or(|last| i > last) {
                " = None"
            } else {
                ""
            };
            format!(
                ", {}: {}{default}",
                names.value(&p.schema_name),
                annotation(names.schema(), id, &p.ty)
            )
        })
        .collect()
}

/// `_CalculatorAddParams(a=a, b=b).to_json()`.
fn params_json(names: &Names<'_>, service: &Service, job: &Job) -> String {
    let args: Vec<String> = job
        .params
        .iter()
        .map(|p| {
            let n = names.value(&p.schema_name);
            format!("{n}={n}")
        })
        .collect();
    format!(
        "{}({}).to_json()",
        params_class_name(service, job),
        args.join(", ")
    )
}

const OPTIONS: &[(&str, &str)] = &[
    ("timeout", "float | None"),
    ("delay", "float | None"),
    ("run_at", "datetime.datetime | float | None"),
    ("idempotency_key", "str | None"),
    ("idempotency_ttl", "float | None"),
    ("metadata", "typing.Mapping[str, str] | None"),
    ("keep_result", "float | None"),
    ("max_attempts", "int | None"),
    ("priority", "int | None"),
];

/// Both client classes of a service.
pub(crate) fn clients(code: &mut Code, names: &Names<'_>, id: ModuleId, service: &Service) {
    client(code, names, id, service, false);
    client(code, names, id, service, true);
}

fn client(code: &mut Code, names: &Names<'_>, id: ModuleId, service: &Service, is_async: bool) {
    let base = names::class(&service.schema_name);
    let (class, runtime, pending, def) = if is_async {
        (
            format!("Async{base}Client"),
            "rpc_runtime.AsyncClient",
            "rpc_runtime.AsyncPending",
            "async def",
        )
    } else {
        (
            format!("{base}Client"),
            "rpc_runtime.Client",
            "rpc_runtime.Pending",
            "def",
        )
    };
    let wait = if is_async { "await " } else { "" };
    code.blank();
    code.blank();
    code.line(format!("class {class}:"));
    code.indented(|code| {
        code.docstring(
            &service.docs,
            &[format!(
                "The typed {} client of service `{}`: one method per job, wrapping\n\
                 ``{runtime}``. ``with_options(...)`` gives a copy whose calls carry\n\
                 those options (timeout, delay or run_at, idempotency key, metadata...).",
                if is_async { "asyncio" } else { "synchronous" },
                service.wire
            )],
        );
        code.blank();
        code.line("def __init__(");
        code.indented(|code| {
            code.line(format!(
                "self, client: {runtime}, options: rpc_runtime.CallOptions | None = None"
            ))
        });
        code.line(") -> None:");
        code.indented(|code| {
            code.line("self._client = client");
            code.line("self._options = options");
        });
        code.blank();
        code.line("@property");
        code.line(format!("def client(self) -> {runtime}:"));
        code.indented(|code| {
            code.line("\"\"\"The untyped client underneath.\"\"\"");
            code.line("return self._client");
        });
        code.blank();
        code.line("def with_options(");
        code.indented(|code| {
            code.line("self,");
            code.line("*,");
            for (name, ty) in OPTIONS {
                code.line(format!("{name}: {ty} = None,"));
            }
        });
        code.line(format!(") -> {class}:"));
        code.indented(|code| {
            code.line("\"\"\"A copy of this client whose calls carry these options (on top of its own).\"\"\"");
            code.line(format!("return {class}("));
            code.indented(|code| {
                code.line("self._client,");
                code.line("_codec.options_with(");
                code.indented(|code| {
                    code.line("self._options,");
                    for (name, _) in OPTIONS {
                        code.line(format!("{name}={name},"));
                    }
                });
                code.line("),");
            });
            code.line(")");
        });
        for job in &service.jobs {
            let (method, send) = client_methods(names, job);
            let constant = names::constant(&service.schema_name, &job.schema_name);
            let params = params_signature(names, id, job, true);
            let json = params_json(names, service, job);
            let mut extra = deprecation(&job.deprecated);
            if let Returns::Result { err, .. } = &job.returns {
                let class = super::codec::class_ref(names.schema(), id, *err);
                extra.push(format!(
                    "Raises ``{class}Exception`` when the job answers with a ``{class}``."
                ));
            }
            let warn = |code: &mut Code| {
                if let Some(d) = &job.deprecated {
                    let text = match &d.note {
                        Some(note) => format!(
                            "job `{}.{}` is deprecated: {note}",
                            service.wire, job.wire
                        ),
                        None => format!("job `{}.{}` is deprecated", service.wire, job.wire),
                    };
                    code.line(format!(
                        "warnings.warn({}, DeprecationWarning, stacklevel=2)",
                        string(&text)
                    ));
                }
            };
            code.blank();
            if matches!(job.returns, Returns::Nothing) {
                code.line(format!("{def} {method}(self{params}) -> str:"));
                code.indented(|code| {
                    let mut extra = extra.clone();
                    extra.push("One-way: sends the job and returns its call id.".into());
                    code.docstring(&job.docs, &extra);
                    warn(code);
                    call(code, wait, "send_one_way", &constant, &json);
                });
                continue;
            }
            let result = result_type(names, id, job);
            code.line(format!("{def} {method}(self{params}) -> {result}:"));
            code.indented(|code| {
                code.docstring(&job.docs, &extra);
                warn(code);
                call(code, wait, "call_job", &constant, &json);
            });
            code.blank();
            code.line(format!(
                "{def} {send}(self{params}) -> {pending}[{result}]:"
            ));
            code.indented(|code| {
                code.docstring(
                    &[],
                    &[format!(
                        "Sends job `{}.{}` without waiting: the handle has ``.id`` and\n\
                         ``.result(timeout)``.",
                        service.wire, job.wire
                    )],
                );
                warn(code);
                call(code, wait, "send_job", &constant, &json);
            });
        }
    });
}

/// `return [await ]self._client.<method>(SPEC, params, self._options)`.
fn call(code: &mut Code, wait: &str, method: &str, constant: &str, json: &str) {
    code.line(format!("return {wait}self._client.{method}("));
    code.indented(|code| code.line(format!("{constant}, {json}, self._options")));
    code.line(")");
}
