//! The worker side of a service: `class <Service>(abc.ABC)` (synchronous
//! handlers, run in the worker's threads), `class Async<Service>(abc.ABC)`
//! (coroutines, on its event loop) and `<service>_service(handler)`, the
//! `rpc_runtime.Service` a `Worker` mounts.

use super::client::{params_signature, result_type};
use super::names::{self, Names};
use super::types::{deprecation, params_class_name};
use super::{string, Code};
use crate::model::{Job, ModuleId, Returns, Service};

/// The handler's context parameter: `ctx`, unless a parameter has that name.
fn ctx_name(names: &Names<'_>, job: &Job) -> String {
    let mut ctx = "ctx".to_string();
    while job
        .params
        .iter()
        .any(|p| names.value(&p.schema_name) == ctx)
    {
        ctx.push('_');
    }
    ctx
}

pub(crate) fn handlers(code: &mut Code, names: &Names<'_>, id: ModuleId, service: &Service) {
    let base = names::class(&service.schema_name);
    for is_async in [false, true] {
        let class = if is_async {
            format!("Async{base}")
        } else {
            base.clone()
        };
        let function = format!("{}_service", names.value(&service.schema_name));
        code.blank();
        code.blank();
        code.line(format!("class {class}(abc.ABC):"));
        code.indented(|code| {
            code.docstring(
                &service.docs,
                &[format!(
                    "The {} handler of service `{}`: subclass it,\n\
                     implement every job and mount ``{function}(handler)`` on a\n\
                     ``rpc_runtime.Worker``. Return the result; raise the job's\n\
                     ``...Exception`` for its typed error, ``rpc_runtime.Retry`` to be\n\
                     tried again, ``rpc_runtime.Fatal`` to give up.",
                    if is_async {
                        "asyncio (``async def``)"
                    } else {
                        "synchronous (run in a worker thread)"
                    },
                    service.wire
                )],
            );
            for job in &service.jobs {
                let method = names.value(&job.schema_name);
                let ctx = ctx_name(names, job);
                let params = params_signature(names, id, job, false);
                let result = result_type(names, id, job);
                let def = if is_async { "async def" } else { "def" };
                let mut extra = deprecation(&job.deprecated);
                if let Returns::Result { err, .. } = &job.returns {
                    let class = super::codec::class_ref(names.schema(), id, *err);
                    extra.push(format!(
                        "Raise ``{class}Exception`` to answer with a ``{class}``."
                    ));
                }
                if matches!(job.returns, Returns::Nothing) {
                    extra.push("One-way: the caller gets no answer.".into());
                }
                code.blank();
                code.line("@abc.abstractmethod");
                code.line(format!(
                    "{def} {method}(self, {ctx}: rpc_runtime.Context{params}) -> {result}:"
                ));
                code.indented(|code| {
                    code.docstring(&job.docs, &extra);
                    code.line("raise NotImplementedError");
                });
            }
        });
    }
    runners(code, names, id, service);
    service_function(code, names, service);
}

/// `_<service>_<job>(handler, ctx, params)`: decode, call the handler.
fn runners(code: &mut Code, names: &Names<'_>, id: ModuleId, service: &Service) {
    let base = names::class(&service.schema_name);
    for job in &service.jobs {
        let method = names.value(&job.schema_name);
        let params_class = params_class_name(service, job);
        let args: String = job
            .params
            .iter()
            .map(|p| format!(", p.{}", names.value(&p.schema_name)))
            .collect();
        let result = result_type(names, id, job);
        let runner = runner_name(service, job);
        code.blank();
        code.blank();
        code.line(format!(
            "def {runner}(\n    handler: {base}, ctx: rpc_runtime.Context, params: typing.Any\n) -> {result}:"
        ));
        code.indented(|code| {
            code.line(format!("p = {params_class}.from_json(params)"));
            code.line(format!("return handler.{method}(ctx{args})"));
        });
        code.blank();
        code.blank();
        code.line(format!(
            "def {runner}_async(\n    handler: Async{base}, ctx: rpc_runtime.Context, params: typing.Any\n) -> typing.Awaitable[{result}]:"
        ));
        code.indented(|code| {
            code.line(format!("p = {params_class}.from_json(params)"));
            code.line(format!("return handler.{method}(ctx{args})"));
        });
    }
}

/// `_run_calculator_add`.
fn runner_name(service: &Service, job: &Job) -> String {
    format!(
        "_run_{}",
        names::constant(&service.schema_name, &job.schema_name).to_lowercase()
    )
}

fn service_function(code: &mut Code, names: &Names<'_>, service: &Service) {
    let base = names::class(&service.schema_name);
    let function = format!("{}_service", names.value(&service.schema_name));
    let binding = |code: &mut Code, job: &Job, is_async: bool| {
        let constant = names::constant(&service.schema_name, &job.schema_name);
        let runner = runner_name(service, job);
        let suffix = if is_async { "_async" } else { "" };
        code.line("rpc_runtime.JobBinding(");
        code.indented(|code| {
            code.line(format!("{constant},"));
            code.line(format!(
                "lambda ctx, params: {runner}{suffix}(handler, ctx, params),"
            ));
            if is_async {
                code.line("is_async=True,");
            }
        });
        code.line("),");
    };
    for is_async in [false, true] {
        let (name, class) = if is_async {
            (format!("_{function}_async"), format!("Async{base}"))
        } else {
            (format!("_{function}_sync"), base.clone())
        };
        code.blank();
        code.blank();
        code.line(format!(
            "def {name}(handler: {class}) -> rpc_runtime.Service:"
        ));
        code.indented(|code| {
            code.line("return rpc_runtime.Service(");
            code.indented(|code| {
                code.line(format!("{},", string(&service.wire)));
                code.line("(");
                code.indented(|code| {
                    for job in &service.jobs {
                        binding(code, job, is_async);
                    }
                });
                code.line("),");
                if service.shards > 1 {
                    code.line(format!("shards={},", service.shards));
                }
            });
            code.line(")");
        });
    }
    code.blank();
    code.blank();
    code.line(format!(
        "def {function}(handler: {base} | Async{base}) -> rpc_runtime.Service:"
    ));
    code.indented(|code| {
        code.docstring(
            &[],
            &[format!(
                "The jobs of service `{}` bound to ``handler``, for ``Worker.mount``.",
                service.wire
            )],
        );
        code.line(format!("if isinstance(handler, Async{base}):"));
        code.indented(|code| code.line(format!("return _{function}_async(handler)")));
        code.line(format!("if isinstance(handler, {base}):"));
        code.indented(|code| code.line(format!("return _{function}_sync(handler)")));
        code.line(format!(
            "raise TypeError(f\"expected a {base} or an Async{base}, got {{type(handler).__name__}}\")"
        ));
    });
}
