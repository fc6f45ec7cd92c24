-- Biểu II.06a identities on every fact row:
--   received (carried over + online + in person + postal) = resolved + pending,
--   resolved = early + on time + late, pending = in time + overdue.
select *
from {{ ref('fct_dossier_throughput') }}
where received_total <> resolved_total + pending_total
   or resolved_total <> resolved_early + resolved_on_time + resolved_late
   or pending_total <> pending_in_time + pending_overdue
   or received_total <> received_carried_over + received_online + received_direct + coalesce(received_postal, 0)
