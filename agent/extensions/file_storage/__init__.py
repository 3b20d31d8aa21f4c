"""The ``file_storage`` extension: durable storage for persistent sending queues.

Exporters name it in ``sending_queue.storage``; each exporter gets one
:class:`~agent.extensions.file_storage.segmentlog.SegmentLog` per signal under
``<directory>/exporter_<type>_<name>_<signal>/`` (see that module for the
on-disk format and the crash semantics, and :mod:`agent.extensions.storage`
for the client contract).
"""
