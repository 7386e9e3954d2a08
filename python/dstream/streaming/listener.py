"""``StreamingListener``: callbacks on the progress of batches, as PySpark's."""

__all__ = ["StreamingListener", "BatchInfo", "Time"]


class Time:
    """A batch time, as Spark's ``Time``: ``milliseconds()`` since the epoch."""

    def __init__(self, millis):
        self._millis = millis

    def milliseconds(self):
        """Milliseconds since the epoch."""
        return self._millis

    def __eq__(self, other):
        return isinstance(other, Time) and other._millis == self._millis

    def __hash__(self):
        return hash(self._millis)

    def __repr__(self):
        return "%d ms" % self._millis


class BatchInfo:
    """What is known of one batch; delays are in milliseconds, ``None`` (Spark: -1)
    until known."""

    def __init__(self, info):
        self._info = info

    def batchTime(self):
        """The batch's time."""
        return Time(self._info["batch_time"])

    def submissionTime(self):
        """When the batch was queued, in ms since the epoch."""
        return self._info["submission_time"]

    def processingStartTime(self):
        """When its first job started, in ms since the epoch."""
        return self._info["processing_start_time"]

    def processingEndTime(self):
        """When its last job ended, in ms since the epoch."""
        return self._info["processing_end_time"]

    def schedulingDelay(self):
        """How long it waited to start, in ms."""
        return self._info["scheduling_delay"]

    def processingDelay(self):
        """How long its jobs ran, in ms."""
        return self._info["processing_delay"]

    def totalDelay(self):
        """Scheduling plus processing delay, in ms."""
        return self._info["total_delay"]

    def numRecords(self):
        """How many records its inputs received."""
        return self._info["num_records"]

    def numOutputOperations(self):
        """How many output operations it ran."""
        return self._info["output_operations"]

    def failureReason(self):
        """Why the batch failed, or ``None``."""
        return self._info["failure"]

    def __repr__(self):
        return "BatchInfo(%r)" % (self._info,)


class _BatchEvent:
    def __init__(self, info):
        self._batch_info = BatchInfo(info)

    def batchInfo(self):
        """The batch's figures."""
        return self._batch_info


class StreamingListener:
    """Override the callbacks you need; each receives an event whose ``batchInfo()``
    gives the batch's figures. They run on a thread of the engine, one at a time; an
    exception in one is printed and the stream goes on."""

    def onStreamingStarted(self, streamingStarted):
        """The context started."""

    def onBatchSubmitted(self, batchSubmitted):
        """A batch was queued."""

    def onBatchStarted(self, batchStarted):
        """A batch started running."""

    def onBatchCompleted(self, batchCompleted):
        """A batch finished (or failed: see ``batchInfo().failureReason()``)."""

    def onStreamingStopped(self, streamingStopped):
        """The context stopped."""

    def onReceiverStarted(self, receiverStarted):
        """Kept for PySpark code; dstream reports receivers on its status page."""

    def onReceiverError(self, receiverError):
        """Kept for PySpark code; dstream reports receivers on its status page."""

    def onReceiverStopped(self, receiverStopped):
        """Kept for PySpark code; dstream reports receivers on its status page."""

    def onOutputOperationStarted(self, outputOperationStarted):
        """Kept for PySpark code."""

    def onOutputOperationCompleted(self, outputOperationCompleted):
        """Kept for PySpark code."""


def _dispatcher(listener):
    """The engine's events, as calls of ``listener``'s methods."""
    def on_event(name, info):
        if name == "streaming_started":
            listener.onStreamingStarted(None)
        elif name == "streaming_stopped":
            listener.onStreamingStopped(None)
        elif name == "batch_submitted":
            listener.onBatchSubmitted(_BatchEvent(info))
        elif name == "batch_started":
            listener.onBatchStarted(_BatchEvent(info))
        elif name == "batch_completed":
            listener.onBatchCompleted(_BatchEvent(info))

    return on_event
