"""The plan: compiles a processor's graph into closures and renders topologies."""

from streamflow.plan.compile import CompiledTask, StepError, TaskContext, compile_task

__all__ = ["CompiledTask", "StepError", "TaskContext", "compile_task"]
