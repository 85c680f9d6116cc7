"""TensorBoard's HParams dashboard as a user sees it, pointed at a folder: its experiment (the HParams columns)
and its session groups (one per run, with its values and metrics), through the plugin's own request handlers."""
from pathlib import Path


def hparams_dashboard(logdir: Path):
    """``(experiment, {session name: session group})`` of the HParams plugin over ``logdir``."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    hp = backend_context.Context(base_plugin.TBContext(
        logdir=str(logdir), multiplexer=mux, data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir))))
    ctx = context.RequestContext()
    experiment = hp.experiment_from_metadata(ctx, "", True, hp.hparams_metadata(ctx, ""),
                                             hp.hparams_from_data_provider(ctx, "", None))
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=1000, allowed_statuses=[
        api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING])
    groups = list_session_groups.Handler(ctx, hp, "", request).run().session_groups
    return experiment, {g.name: g for g in groups}
