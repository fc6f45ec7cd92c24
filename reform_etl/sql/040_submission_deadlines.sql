-- The one definition of a submission's deadline (SPEC §4). The mart rpt_submission_status
-- (int_submissions__expected) and the run warning unit_missing_for_period both call it, with
-- the dbt vars submission_deadline_day_of_next_month, submission_deadline_yearly and
-- submission_timezone as arguments (reform_etl.deadlines reads them for the warning).
-- A month is due on that day of the next month, a year (PAR scores) on that month-day of the
-- next year; a submission counts as on time until the end of the deadline day, local time.
create or replace function audit.submission_deadline(period text, day_of_next_month integer,
                                                     yearly_month_day text)
returns date language sql stable parallel safe as $$
    select case
        when period ~ '^[0-9]{4}$'
            then to_date((period::integer + 1)::text || '-' || yearly_month_day, 'YYYY-MM-DD')
        when period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'
            then (to_date(period || '-01', 'YYYY-MM-DD') + interval '1 month'
                  + (day_of_next_month - 1) * interval '1 day')::date
    end
$$;

create or replace function audit.submission_deadline_at(period text, day_of_next_month integer,
                                                        yearly_month_day text, tz text)
returns timestamptz language sql stable parallel safe as $$
    select (audit.submission_deadline(period, day_of_next_month, yearly_month_day) + 1)::timestamp at time zone tz
$$;
