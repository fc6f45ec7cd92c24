-- What the reader of an official form found that is not a row (a totals row that is not the sum of its
-- rows): the `form_totals_mismatch` warning of the kind's history suite reads it (rules.py).
create table if not exists audit.form_findings (
    finding_id  bigserial primary key,
    file_id     bigint not null references audit.submission_files (file_id) on delete cascade,
    rule        text not null,
    sheet_row   integer,
    finding     jsonb not null
);
create index if not exists form_findings_file on audit.form_findings (file_id);
