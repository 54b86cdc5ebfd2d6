"""The plan: compiles a processor's graph into closures."""

from streamflow.plan.compile import CompiledTask, StepError, TaskContext, compile_task

__all__ = ["CompiledTask", "StepError", "TaskContext", "compile_task"]
