"""Beam's DaskRunner (2.77) with the three translation bugs that stop real pipelines fixed.

Beam 2.77's `apache_beam.runners.dask` runs simple graphs only (see
`test_dask_runner.py::test_beam_dask_runner_bugs`, which shows each bug):

1. a ParDo's tagged outputs are not separated: every output, main and tagged, reaches
   every consumer of any of its outputs (our stages' FAILED outputs would be written
   as events);
2. elements a DoFn emits from `finish_bundle` are dropped (our sinks report their files
   from there);
3. a side input is computed again, inside the consuming task, from its whole upstream
   graph (re-running side effects such as staged file writes), and only the graph's
   last transform is computed.

`FixedDaskRunner` keeps Beam's translation of Create, GroupByKey, Flatten and
Reshuffle and replaces the ParDo translation and the graph walk: ParDo partitions
emit (tag, value) pairs that each consumer filters by its PCollection's tag,
finish_bundle outputs are collected, side inputs are materialised once (a dask
Delayed of the side input's partitions) and every leaf of the graph is computed.
Metrics are still not collected (DaskRunnerResult.metrics() is not implemented).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import dask
import dask.bag as db
from apache_beam import DoFn, TaggedOutput, pvalue
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, _OutputHandler
from apache_beam.runners.dask import transform_evaluator as beam_dask
from apache_beam.runners.dask.dask_runner import DaskOptions, DaskRunner, DaskRunnerResult
from apache_beam.runners.dask.overrides import dask_overrides
from apache_beam.transforms.sideinputs import SideInputMap

MAIN_TAG = None


def _tag_of(output: Any) -> tuple[str | None, Any]:
    if isinstance(output, TaggedOutput):
        return output.tag, output.value.value
    return MAIN_TAG, output.value


def _run_bundle(items, invoker_args, invoker_kwargs, views, window_fn, *side_values):
    """One dask partition as one Beam bundle; returns (tag, value) of every output.

    `views` are the side inputs' (view class, options); `side_values` their elements,
    computed once by dask (top-level Delayed arguments)."""
    receivers = beam_dask.OneReceiver()
    handler_kwargs = dict(invoker_args[1])
    handler = _OutputHandler(
        main_receivers=receivers[None], tagged_receivers=receivers, **handler_kwargs
    )
    side_inputs = [
        SideInputMap(
            view_class,
            view_options,
            [beam_dask.get_windowed_value(v, window_fn) for v in values],
        )
        for (view_class, view_options), values in zip(views, side_values, strict=True)
    ]
    invoker = DoFnInvoker.create_invoker(
        invoker_args[0], handler, side_inputs=side_inputs, **invoker_kwargs
    )
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(item)
    invoker.invoke_finish_bundle()  # before collecting: its outputs count too
    invoker.invoke_teardown()
    return [_tag_of(output) for output in receivers.values]


def _concat(partitions: list[list]) -> list:
    return [x for part in partitions for x in part]


def _pardo_bag(applied: AppliedPTransform, input_bag: db.Bag, sides: list) -> db.Bag:
    transform = applied.transform
    args, kwargs = transform.raw_side_inputs
    main_input = next(iter(applied.main_inputs.values()))
    window_fn = main_input.windowing.windowfn if hasattr(main_input, "windowing") else None
    invoker_args = [
        DoFnSignature(transform.fn),
        dict(
            window_fn=window_fn,
            per_element_output_counter=None,
            output_batch_converter=None,
            process_yields_batches=False,
            process_batch_yields_elements=False,
        ),
    ]
    invoker_kwargs = dict(
        context=DoFnContext(transform.label, state=None),
        input_args=list(args),
        input_kwargs=kwargs,
        user_state_context=None,
        bundle_finalizer_param=DoFn.BundleFinalizerParam(),
    )
    views = [(view_class, options) for view_class, options, _ in sides]
    values = [v for _, _, v in sides]
    return input_bag.map(beam_dask.get_windowed_value, window_fn).map_partitions(
        _run_bundle, invoker_args, invoker_kwargs, views, window_fn, *values
    )


def _select(tag):
    def keep(pair) -> bool:
        return pair[0] == tag

    return keep


def _value(pair):
    return pair[1]


@dataclasses.dataclass
class _Visitor(PipelineVisitor):
    bag_kwargs: dict
    bags: dict = dataclasses.field(default_factory=collections.OrderedDict)
    tagged: set = dataclasses.field(default_factory=set)  # producers whose bag is (tag, value)
    consumed: set = dataclasses.field(default_factory=set)

    def bag_of(self, pcoll: pvalue.PCollection) -> db.Bag | None:
        producer = pcoll.producer
        self.consumed.add(producer)
        bag = self.bags.get(producer)
        if bag is not None and producer in self.tagged:
            bag = bag.filter(_select(pcoll.tag)).map(_value)
        return bag

    def visit_transform(self, node: AppliedPTransform) -> None:
        inputs = [None if isinstance(i, pvalue.PBegin) else self.bag_of(i) for i in node.inputs]
        inputs = [b for b in inputs if b is not None]
        if node.transform.__class__ is beam_dask.apache_beam.ParDo:  # not its subclasses
            sides = []
            for si in node.side_inputs:
                side_bag = self.bag_of(si.pvalue)
                # Unoptimised, so that its upstream tasks keep their keys and run once.
                values = dask.delayed(_concat)(side_bag.to_delayed(optimize_graph=False))
                sides.append((type(si), si._view_options(), values))
            self.bags[node] = _pardo_bag(node, inputs[0], sides)
            self.tagged.add(node)
            return
        op_class = beam_dask.TRANSLATIONS.get(node.transform.__class__, beam_dask.NoOp)
        op = op_class(node, bag_kwargs=self.bag_kwargs)
        if not inputs:
            self.bags[node] = op.apply(input_bag=None)
        elif isinstance(op, beam_dask.Flatten):
            self.bags[node] = op.apply(input_bag=inputs)
        else:
            self.bags[node] = op.apply(input_bag=inputs[0])

    def leaves(self) -> list[db.Bag]:
        return [bag for node, bag in self.bags.items() if node not in self.consumed]


class FixedDaskRunner(DaskRunner):
    """DaskRunner with tagged outputs, finish_bundle outputs and side inputs working."""

    def run_pipeline(self, pipeline, options):
        import dask.distributed as ddist

        dask_options = options.view_as(DaskOptions).get_all_options(
            drop_default=True, current_only=True
        )
        bag_kwargs = DaskOptions._extract_bag_kwargs(dask_options)
        client = ddist.Client(**dask_options)
        pipeline.replace_all(dask_overrides())
        visitor = _Visitor(bag_kwargs)
        pipeline.visit(visitor)
        futures = client.compute(visitor.leaves())
        return DaskRunnerResult(client, futures)
