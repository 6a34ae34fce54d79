"""Clay mode: leads enriched through Clay's asynchronous webhook + callback protocol.

Clay does not answer an enrichment request with data. A row POSTed to a Clay table's
webhook is answered at once with nothing; Clay runs the table's enrichment columns
(seconds to minutes) and an HTTP API column then POSTs the enriched row to an endpoint of
ours. ``provider_mode = clay`` turns the synchronous "call, wait, publish" of a lead into
two halves joined by a *pending lead* in the state topic.

Modules: :mod:`.service` (the public :class:`ClayService`), :mod:`.pending` (the registry
of pending submissions), :mod:`.finisher` (fenced transactions that finish a lead),
:mod:`.receiver` and :mod:`.callback` (the callback endpoint, its auth and validation),
:mod:`.sweeper` (deadlines), :mod:`.outputs` (the records a finished lead produces); on
the webhook side :mod:`.submitter` (the row's POST), :mod:`.webhooks` (which webhook takes
it) and :mod:`.pacing` (Clay's rate limit).

Life of a lead, and why each is exactly once
--------------------------------------------

1. **Submit** (in the lead's partition lane, :meth:`ClayService.submit`): a webhook row is
   reserved (leads are *held* while every webhook is used up, before any credit is
   reserved), the guard admits the lead (cache hit: enriched at once, as in sync mode;
   breaker; **budget claim**, journalled before any call), the webhook count is made
   durable, and the row (lead fields + ``lead_id`` + ``correlation_id``) is POSTed with
   ``x-clay-webhook-auth``, paced, 429/``Retry-After`` honoured.
2. **Commit**: the lead's outcome is ``submitted``; the lane's transaction commits the
   input offset together with ``clay/pending/<lead_id>/<correlation_id>`` (deadline,
   original key/value/headers in base64, attempt, origin, claim, submitter): one key per
   input record, so the same ``lead_id`` twice (an update within the callback delay) is
   two submissions with two outputs, as in sync mode. After a crash the record is either
   pending (committed) or read again (not committed) and submitted again under a new
   correlation id: Clay may then get two rows for it (both paid for, both counted, the
   budget over-counts), but only one output can follow, because only the second
   submission's pending record was ever committed.
3. **Callback** (:mod:`.receiver`): authenticated (shared-secret header or HMAC-SHA256 of
   the raw body), validated, matched to the pending submission by ``lead_id`` **and**
   ``correlation_id`` (a callback may beat step 2's commit: it waits up to
   ``clay_callback_wait_s``). The enriched lead (or, for an error row, a retriable
   ``provider_error`` DLQ record) **and** the tombstone of the pending key are written in
   **one transaction**, every delivery checked before the commit (an output Kafka refuses
   goes to the DLQ as ``output_too_large``/``output_refused`` instead); 200 is answered
   only after it commits. A submission already finished answers 200 ``duplicate`` and
   publishes nothing, also when the callback is a captured one replayed later; a
   correlation id that matches no submission of a lead with others pending is 409,
   counted and logged: it never finishes another submission of the lead.
4. **Deadline** (:mod:`.sweeper`): a pending lead past its deadline becomes a retriable
   ``provider_timeout`` DLQ record (original bytes and headers, ``encode_dlq_headers``
   with the stored origin and attempt) plus the tombstone, in one transaction. Deadlines
   are wall-clock instants in the state topic: a restart keeps them.
5. **Settle**: after the commit, the claim is settled (the callback's ``credits``, else the
   estimate; a timeout settles at the estimate, since Clay may have charged) and the
   result is cached by domain. A crash in between leaves the claim outstanding: the
   budget over-counts, it never under-counts.

Several instances (the multi-instance question)
-----------------------------------------------

Every instance tails the whole state topic, so every instance knows every pending lead,
and Clay's callbacks (behind a load balancer) may reach any of them, twice at the same
moment for a duplicate. Finishing a submission is therefore serialised **per state
partition across the group** with Kafka's own fencing (:mod:`.finisher`): the tombstone of
its pending key lives on one state partition ``p``, and submissions of ``p`` are finished
only under the transactional id ``<group>.clay.<state topic>.<p>``. An instance
that takes that id over fences the previous holder (its open transaction is aborted or
completed first) and then reads ``p`` to its last stable offset before deciding anything,
so it sees every lead finished before; a fenced holder's next commit fails and it does the
same. Duplicate callbacks on two instances thus publish once. What this costs, honestly:

* contention: two instances finishing leads of the same partition at the same time hand
  the id back and forth (a producer initialisation, tens of milliseconds, each time); at
  Clay's pace (10 rows/s per table) that is affordable. The sweeper avoids it by letting
  the submitting instance sweep first and others only ``clay_orphan_grace_s`` later;
* a webhook's count can overshoot by the rows other instances have in flight, which
  ``clay_webhook_headroom_rows`` absorbs;
* pending keys of one lead may live on different state partitions; that is harmless,
  since a finish is about one submission, and each submission has one key.

Webhook lifetime
----------------

Submissions are counted per webhook URL in the state topic (see
:mod:`streamproc.clay.webhooks`); rows go to the first webhook below ``limit -
headroom``, a move to the next is logged and counted
(``streamproc_clay_webhook_rotations_total``), and ``streamproc_clay_webhook_capacity_low``
is 1 (with one ``clay.webhooks_nearly_used_up`` error line) once the last webhook has
taken ``clay_webhook_alert_ratio`` of its rows. When all are used up, leads are **held**:
the partitions stop being fetched and ``leads.raw`` is the queue until an operator adds a
webhook and restarts. A DLQ record would need a replay anyway, and ``provider_rejected``
would park leads that nothing is wrong with.
"""

from streamproc.clay.service import ClayService

__all__ = ["ClayService"]
