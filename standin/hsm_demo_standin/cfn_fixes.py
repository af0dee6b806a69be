"""Where moto 5.2.5's CloudFormation engine differs from AWS in ways the infra hits, behave like AWS.

1. YAML short form `!Condition X` (inside Fn::And/Or/Not) means {"Condition": "X"}; stock moto reads
   it as {"Fn::Condition": "X"}, which its condition parser evaluates as the plain string (truthy).
2. Updates compare each resource's *resolved* properties (parameters, conditions, Refs and GetAtts
   evaluated) with the ones it was last created/updated with, in dependency order, so:
   - a resource whose Condition became true is created by the update itself (stock moto creates it
     lazily on the next read, e.g. ListStackResources), one whose Condition became false is deleted;
   - a change that reaches a resource only through parameters, Fn::If, Fn::Sub, FindInMap… is applied
     (stock moto only notices template text changes and parameters used by a direct Ref);
   - replacing a resource (new physical id / attributes) updates everything that references it
     (stock moto leaves dependants on the old resource).
   Resources removed from the template are deleted after the creates and updates (AWS's clean-up).
3. Reads never create resources: after a stack operation, a resource that was not created stays
   absent (stock moto creates it on first access from DescribeStacks' outputs or resource listings).
4. A resource that fails during CreateStack/UpdateStack/DeleteStack does not make the call fail:
   the call returns the StackId and the stack ends ROLLBACK_COMPLETE (or CREATE_FAILED with
   DisableRollback / OnFailure=DO_NOTHING, deleted with OnFailure=DELETE), UPDATE_ROLLBACK_COMPLETE,
   or DELETE_FAILED, with a <Resource> *_FAILED event carrying the service's message and a
   StackStatusReason. Stock moto returns the failing service's error (JSON where CloudFormation
   speaks XML) from the call and from every later DescribeStacks of that stack.
   Known difference kept: an update rollback re-applies the previous template, so a resource that the
   failed update replaced is re-created (new physical id) rather than the original being kept.
5. AWS::DynamoDB::Table applies PointInTimeRecoverySpecification and TimeToLiveSpecification, as
   UpdateContinuousBackups / UpdateTimeToLive would (stock moto ignores both: a table the infra
   creates with point-in-time recovery reports it DISABLED).
"""

from __future__ import annotations

import copy
import re
import threading
from typing import Any

_installed = False
_request = threading.local()  # OnFailure of the CreateStack call being served on this thread


# --------------------------------------------------------------------------------------------- YAML
def _yaml_tag_constructor(loader: Any, tag: Any, node: Any) -> Any:
    from moto.cloudformation import utils

    if tag == "!Condition":
        return {"Condition": loader.construct_scalar(node)}
    return utils._standin_stock_yaml_tag_constructor(loader, tag, node)


# ------------------------------------------------------------------------------------- ResourceMap
def _st(rm: Any) -> dict[str, Any]:
    """Our per-ResourceMap state (created on first use)."""
    st = rm.__dict__.get("_standin")
    if st is None:
        # live: reads may create resources (only while a stack operation runs, or before the first)
        st = {"live": True, "applied": {}, "failed": None}
        rm.__dict__["_standin"] = st
    return st


def _resolved(rm: Any, resource_json: dict[str, Any]) -> Any:
    """Type and Properties with every intrinsic function evaluated against the map's current state."""
    from moto.cloudformation.parsing import clean_json

    return clean_json(
        {"Type": resource_json.get("Type"), "Properties": copy.deepcopy(resource_json.get("Properties") or {})}, rm
    )


def _getitem(self: Any, key: str) -> Any:
    from moto.cloudformation import parsing

    if key in self._parsed_resources:
        return self._parsed_resources[key]
    st = _st(self)
    if key in self._resource_json_map and not st["live"]:
        return None  # not created by the stack: a read must not create it
    try:
        res = parsing.ResourceMap._standin_stock_getitem(self, key)
    except Exception as e:
        if key in self._resource_json_map and st["failed"] is None:
            st["failed"] = (key, e)  # the innermost resource that failed
        raise
    if res is not None and key in self._resource_json_map:
        st["applied"][key] = _resolved(self, self._resource_json_map[key])
    return res


def _refs(node: Any, names: set[str]) -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                if v in names:
                    out.add(v)
            elif k == "Fn::GetAtt":
                target = v[0] if isinstance(v, list) and v else str(v).split(".")[0]
                if target in names:
                    out.add(target)
            elif k == "Fn::Sub":
                text, mapping = (v[0], v[1]) if isinstance(v, list) and len(v) == 2 else (v, {})
                if isinstance(text, str):
                    for m in re.findall(r"\$\{([^!}][^}]*)\}", text):
                        name = m.split(".")[0]
                        if name in names and name not in (mapping or {}):
                            out.add(name)
                out |= _refs(mapping, names)
            else:
                out |= _refs(v, names)
    elif isinstance(node, list):
        for v in node:
            out |= _refs(v, names)
    return out


def _dependency_order(resources: dict[str, Any]) -> list[str]:
    names = set(resources)
    deps: dict[str, set[str]] = {}
    for name, body in resources.items():
        d = _refs(body.get("Properties") or {}, names)
        on = body.get("DependsOn") or []
        d |= {x for x in ([on] if isinstance(on, str) else on) if x in names}
        deps[name] = d - {name}
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str) -> None:
        if state.get(n):
            return  # done, or a cycle (left to the resources themselves to fail on)
        state[n] = 1
        for d in sorted(deps[n]):
            visit(d)
        state[n] = 2
        order.append(n)

    for n in resources:
        visit(n)
    return order


def _wanted(rm: Any, body: dict[str, Any]) -> bool:
    cond = body.get("Condition")
    return not cond or bool(rm.lazy_condition_map[cond])


def _delete_all(rm: Any, names: list[str], jsons: dict[str, Any]) -> None:
    """Delete these created resources (reverse dependency order, retried like stock moto)."""
    from moto.cloudformation.parsing import MAX_UPDATE_ATTEMPTS

    st = _st(rm)
    pending = list(names)
    last: tuple[str, Exception] | None = None
    for _ in range(MAX_UPDATE_ATTEMPTS):
        if not pending:
            return
        for name in list(pending):
            res = rm._parsed_resources.get(name)
            try:
                if res is not None:
                    rm._delete_resource(res, jsons[name])
            except Exception as e:  # a dependency still in place: try again in the next pass
                last = (name, e)
                continue
            rm._parsed_resources.pop(name, None)
            st["applied"].pop(name, None)
            pending.remove(name)
    if pending and last is not None:
        st["failed"] = last
        raise last[1]


def _rm_delete(self: Any) -> None:
    """DeleteStack: every created resource without DeletionPolicy Retain, dependants first."""
    jsons = self._resource_json_map
    made = [k for k in _dependency_order(jsons)
            if self._parsed_resources.get(k) is not None and jsons[k].get("DeletionPolicy") != "Retain"]
    _delete_all(self, list(reversed(made)), jsons)


def _update(self: Any, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
    from moto.cloudformation.parsing import parse_and_update_resource

    st = _st(self)
    st["live"], st["failed"] = True, None
    try:
        old_json = self._resource_json_map
        created = [k for k in old_json if self._parsed_resources.get(k) is not None]
        self._template = template
        if parameters is not None:
            self.input_parameters = parameters
        self.load_mapping()
        self.load_parameters()
        self.load_conditions()
        new_json = template["Resources"]
        self._resource_json_map = new_json

        wanted = {k for k, body in new_json.items() if _wanted(self, body)}
        for name in _dependency_order(new_json):
            if name not in wanted:
                continue
            body = new_json[name]
            if name in created and old_json[name].get("Type") == body.get("Type"):
                desired = _resolved(self, body)
                if desired == st["applied"].get(name):
                    continue
                try:
                    changed = parse_and_update_resource(
                        name, body, self, account_id=self._account_id, region_name=self._region_name
                    )
                except Exception as e:
                    st["failed"] = (name, e)
                    raise
                if changed is not None:
                    self._parsed_resources[name] = changed
                st["applied"][name] = _resolved(self, body)
            else:
                if name in created:  # the type changed: a different resource
                    _delete_all(self, [name], old_json)
                    created.remove(name)
                self._parsed_resources.pop(name, None)
                _ = self[name]  # creates it (records what it was created with)
        # clean-up: what the template no longer has, or whose Condition became false
        gone = [k for k in created if k not in wanted]
        order = _dependency_order({k: old_json[k] for k in gone})
        _delete_all(self, list(reversed(order)), old_json)
    finally:
        st["live"] = False


def _create(self: Any, template: dict[str, Any]) -> bool:
    from moto.cloudformation import parsing

    st = _st(self)
    st["live"], st["failed"] = True, None
    try:
        return bool(parsing.ResourceMap._standin_stock_create(self, template))
    finally:
        st["live"] = False


def _rollback_delete(rm: Any) -> None:
    """Delete whatever the failed create made (reverse dependency order)."""
    jsons = rm._resource_json_map
    made = [k for k in _dependency_order(jsons) if rm._parsed_resources.get(k) is not None]
    _delete_all(rm, list(reversed(made)), jsons)


# ------------------------------------------------------------------------------------------ Stack
def _reason(e: Exception) -> str:
    code = getattr(e, "error_type", None) or getattr(e, "code", None) or type(e).__name__
    msg = getattr(e, "message", None) or str(e)
    return f'Resource handler returned message: "{msg}" (HandlerErrorCode: {code})'


def _resource_event(stack: Any, logical_id: str, status: str, reason: str | None) -> None:
    from moto.cloudformation.models import Event

    rm = stack.resource_map
    res = rm._parsed_resources.get(logical_id)
    body = rm._resource_json_map.get(logical_id) or {}
    event = Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=logical_id,
        physical_resource_id=getattr(res, "physical_resource_id", None) or "",
        resource_type=body.get("Type", ""),
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=None,
    )
    event.sendToSns(stack.account_id, stack.region_name, stack.notification_arns)
    stack.events.append(event)


def _failed_name(stack: Any, e: Exception) -> str | None:
    failed = _st(stack.resource_map)["failed"]
    return failed[0] if failed else None


def fail_create(stack: Any, e: Exception, on_failure: str) -> None:
    """The create failed on a resource (or on an export): events, status and rollback as in AWS."""
    name = _failed_name(stack, e)
    if name is not None:
        _resource_event(stack, name, "CREATE_FAILED", _reason(e))
        summary = f"The following resource(s) failed to create: [{name}]."
    else:
        summary = getattr(e, "message", None) or str(e)
    if on_failure == "DO_NOTHING":
        stack.status = "CREATE_FAILED"
        stack.stack_status_reason = summary
        stack._add_stack_event("CREATE_FAILED", resource_status_reason=summary)
        return
    reason = f"{summary} Rollback requested by user." if name is not None else summary
    stack.stack_status_reason = reason
    stack._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=reason)
    try:
        _rollback_delete(stack.resource_map)
    except Exception as err:
        stack.status = "ROLLBACK_FAILED"
        stack.stack_status_reason = f"The following resource(s) failed to delete: [{_failed_name(stack, err)}]."
        stack._add_stack_event("ROLLBACK_FAILED", resource_status_reason=stack.stack_status_reason)
        return
    stack.status = "ROLLBACK_COMPLETE"
    stack._add_stack_event("ROLLBACK_COMPLETE")


def _create_resources(self: Any) -> None:
    self.status = "CREATE_IN_PROGRESS"
    try:
        ready = self.resource_map.create(self.template_dict)
    except Exception as e:
        fail_create(self, e, getattr(_request, "on_failure", "ROLLBACK"))
        return
    self.description = self.template_dict.get("Description")
    if ready:
        self.mark_creation_complete()


def _outputs(self: Any) -> Any:
    if self.status in ("CREATE_FAILED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED",
                       "DELETE_COMPLETE"):
        return None  # a stack whose create failed has no outputs
    from moto.cloudformation.models import Stack

    return Stack._standin_stock_outputs.fget(self)


def _stack_resources(self: Any) -> list[Any]:
    return [r for r in self.resource_map.values() if r is not None]


def _stack_update(
    self: Any,
    template: str,
    role_arn: str | None = None,
    parameters: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    from moto.cloudformation.parsing import ResourceMap

    old_template = self.template
    old_parameters = dict(self.resource_map.input_parameters)
    self.template = template
    try:
        self._parse_template()
        # Template, parameter and condition errors are the call's ValidationError; nothing changes.
        ResourceMap(self.stack_id, self.name, parameters if parameters is not None else old_parameters,
                    self.tags, account_id=self.account_id, region_name=self.region_name,
                    template=self.template_dict, cross_stack_resources=self.cross_stack_resources).load()
    except Exception:
        self.template = old_template
        self._parse_template()
        raise
    self._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
    try:
        self.resource_map.update(self.template_dict, parameters)
    except Exception as e:
        name = _failed_name(self, e)
        if name is not None:
            _resource_event(self, name, "UPDATE_FAILED", _reason(e))
        reason = f"The following resource(s) failed to update: [{name}]." if name else _reason(e)
        self.stack_status_reason = reason
        self._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", resource_status_reason=reason)
        self.template = old_template
        self._parse_template()
        try:
            self.resource_map.update(self.template_dict, old_parameters)
        except Exception as err:
            self.status = "UPDATE_ROLLBACK_FAILED"
            self.stack_status_reason = _reason(err)
            self._add_stack_event("UPDATE_ROLLBACK_FAILED", resource_status_reason=self.stack_status_reason)
        else:
            self.status = "UPDATE_ROLLBACK_COMPLETE"
            self._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
        self.output_map = self._create_output_map()
        return
    self.output_map = self._create_output_map()
    self.stack_status_reason = None
    self._add_stack_event("UPDATE_COMPLETE")
    self.status = "UPDATE_COMPLETE"
    self.role_arn = role_arn
    if parameters is not None:
        self.parameters = parameters
    if tags is not None:
        self.tags = tags


def _stack_delete(self: Any) -> None:
    self._add_stack_event("DELETE_IN_PROGRESS", resource_status_reason="User Initiated")
    st = _st(self.resource_map)
    st["failed"] = None
    try:
        self.resource_map.delete()
    except Exception as e:
        name = _failed_name(self, e)
        if name is not None:
            _resource_event(self, name, "DELETE_FAILED", _reason(e))
        self.status = "DELETE_FAILED"
        self.stack_status_reason = f"The following resource(s) failed to delete: [{name}]." if name else _reason(e)
        self._add_stack_event("DELETE_FAILED", resource_status_reason=self.stack_status_reason)
        return
    self._add_stack_event("DELETE_COMPLETE")
    self.status = "DELETE_COMPLETE"


# ---------------------------------------------------------------------------------------- Backend
def _backend_create_stack(
    self: Any,
    name: str,
    template: str,
    parameters: dict[str, Any],
    notification_arns: list[str] | None = None,
    tags: dict[str, str] | None = None,
    role_arn: str | None = None,
    enable_termination_protection: bool | None = False,
    timeout_in_mins: int | None = None,
    stack_policy_body: str | None = None,
) -> Any:
    from moto.cloudformation.exceptions import AlreadyExistsException
    from moto.cloudformation.models import Stack
    from moto.cloudformation.utils import generate_stack_id

    if name in [stack.name for stack in self.stacks.values()]:
        raise AlreadyExistsException(f"Stack {name} already exists")
    stack_id = generate_stack_id(name, self.region_name, self.account_id)
    # Template, parameter and condition errors are the call's ValidationError; nothing is stored.
    new_stack = Stack(
        stack_id=stack_id,
        name=name,
        template=template,
        parameters=parameters,
        account_id=self.account_id,
        region_name=self.region_name,
        notification_arns=notification_arns,
        tags=tags,
        role_arn=role_arn,
        cross_stack_resources=self.exports,
        enable_termination_protection=enable_termination_protection,
        timeout_in_mins=timeout_in_mins,
        stack_policy_body=stack_policy_body,
    )
    new_stack.stack_status_reason = None
    self.stacks[stack_id] = new_stack
    new_stack._add_stack_event("CREATE_IN_PROGRESS", resource_status_reason="User Initiated")
    new_stack.create_resources()  # resource failures: events and status, never the call's error
    on_failure = getattr(_request, "on_failure", "ROLLBACK")
    if new_stack.status not in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"):
        try:
            clash = [x.name for x in new_stack.exports if x.name in self.exports]
            if clash:
                other = self.exports[clash[0]].exporting_stack_id
                raise _ExportClash(f"Export with name {clash[0]} is already exported by stack {other}")
            for export in new_stack.exports:
                self.exports[export.name] = export
        except Exception as e:
            fail_create(new_stack, e, on_failure)
    if on_failure == "DELETE" and new_stack.status == "ROLLBACK_COMPLETE":
        self.stacks.pop(stack_id, None)
        new_stack._add_stack_event("DELETE_COMPLETE")
        new_stack.status = "DELETE_COMPLETE"
        self.deleted_stacks[stack_id] = new_stack
    return new_stack


class _ExportClash(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _backend_delete_stack(self: Any, name_or_stack_id: str) -> None:
    stack = self.stacks.get(name_or_stack_id)
    if stack is None:
        for s in list(self.stacks.values()):
            if s.name == name_or_stack_id:
                stack = s
                break
    if stack is None:
        return
    export_names = [e.name for e in stack.exports] if stack.status not in _NO_OUTPUTS else []
    stack.delete()
    if stack.status == "DELETE_FAILED":
        return  # stays listed, as in AWS; a later DeleteStack retries
    self.stacks.pop(stack.stack_id, None)
    self.deleted_stacks[stack.stack_id] = stack
    for export_name in export_names:
        self.exports.pop(export_name, None)


_NO_OUTPUTS = ("CREATE_FAILED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_COMPLETE")


# ---------------------------------------------------------------------------------------- Responses
def _response_create_stack(self: Any) -> Any:
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.responses import CloudFormationResponse

    on_failure = self._get_param("OnFailure")
    disable_rollback = self._get_bool_param("DisableRollback", False)
    if on_failure and disable_rollback:
        raise ValidationError(message="You cannot specify both DisableRollback and OnFailure.")
    if on_failure not in (None, "ROLLBACK", "DO_NOTHING", "DELETE"):
        raise ValidationError(message=f"1 validation error detected: Value '{on_failure}' at 'onFailure' "
                              "failed to satisfy constraint: Member must satisfy enum value set: "
                              "[DO_NOTHING, ROLLBACK, DELETE]")
    _request.on_failure = "DO_NOTHING" if disable_rollback else (on_failure or "ROLLBACK")
    try:
        return CloudFormationResponse._standin_stock_create_stack(self)
    finally:
        _request.on_failure = "ROLLBACK"


def _enabled(v: Any) -> bool:
    """A CloudFormation Boolean: true/"true" (any case) after parameters are resolved."""
    return v is True or (isinstance(v, str) and v.lower() == "true")


def _table_create_cfn(cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
                      region_name: str, **kwargs: Any) -> Any:
    """moto's table creation, then the two settings it ignores, through the backend's own calls."""
    from moto.dynamodb.models import dynamodb_backends

    table = cls._standin_stock_create_cfn(resource_name, cloudformation_json, account_id, region_name, **kwargs)
    props = cloudformation_json.get("Properties", {})
    backend = dynamodb_backends[account_id][region_name]
    pitr = props.get("PointInTimeRecoverySpecification") or {}
    if _enabled(pitr.get("PointInTimeRecoveryEnabled")):
        spec: dict[str, Any] = {"PointInTimeRecoveryEnabled": True}
        if "RecoveryPeriodInDays" in pitr:
            spec["RecoveryPeriodInDays"] = int(pitr["RecoveryPeriodInDays"])
        backend.update_continuous_backups(table.name, spec)
    ttl = props.get("TimeToLiveSpecification") or {}
    if "AttributeName" in ttl:
        backend.update_time_to_live(table.name, {"Enabled": _enabled(ttl.get("Enabled")), "AttributeName": ttl["AttributeName"]})
    return table


def install() -> None:
    """Patch moto's CloudFormation modules (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.cloudformation import models, parsing, responses, utils

    utils._standin_stock_yaml_tag_constructor = utils.yaml_tag_constructor
    for mod in (utils, models, responses):
        mod.yaml_tag_constructor = _yaml_tag_constructor

    rm = parsing.ResourceMap
    rm._standin_stock_getitem = rm.__getitem__
    rm._standin_stock_create = rm.create
    rm.__getitem__ = _getitem
    rm.create = _create
    rm.update = _update
    rm.delete = _rm_delete

    stack = models.Stack
    stack._standin_stock_outputs = stack.outputs
    stack.outputs = property(_outputs)
    stack.stack_resources = property(_stack_resources)
    stack.create_resources = _create_resources
    stack.update = _stack_update
    stack.delete = _stack_delete

    backend = models.CloudFormationBackend
    backend.create_stack = _backend_create_stack
    backend.delete_stack = _backend_delete_stack

    from moto.dynamodb.models.table import Table

    Table._standin_stock_create_cfn = Table.create_from_cloudformation_json
    Table.create_from_cloudformation_json = classmethod(_table_create_cfn)

    resp = responses.CloudFormationResponse
    resp._standin_stock_create_stack = resp.create_stack
    resp.create_stack = _response_create_stack
    _installed = True
