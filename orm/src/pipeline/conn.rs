//! One pipeline connection: the startup handshake, then a writer task and a reader task over
//! the socket's two halves, and the queue of batches between them.
//!
//! A batch is encoded straight into the connection's output buffer (its `Bind`/`Execute`
//! pairs and one `Sync`) and queued as a job, in the same step, so jobs and bytes keep one
//! order. The writer sends whatever accumulated in one write; the reader hands each response
//! message to the oldest job and completes it at its `ReadyForQuery`. PostgreSQL flushes its
//! output at every `Sync`, so a batch of twenty reads is answered in one send, not twenty.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Split, Splitable};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::{ErrorResponseBody, Message, RowDescriptionBody};
use postgres_protocol::message::frontend;
use tokio::sync::{oneshot, Notify};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Config;

use super::row::PipelineRow;
use crate::dial::Closed;
use crate::error::Error;

/// Room made for reads when less than [`READ_MIN`] is left: rows keep the bytes they were
/// read into, so a full buffer is not reused but replaced, and this many reads' worth of small
/// answers share one allocation.
const READ_SIZE: usize = 16 * 1024;

/// The least room a read is given; below it, [`READ_SIZE`] more is reserved.
const READ_MIN: usize = 4 * 1024;

/// What the reader collected for one job.
#[derive(Default)]
pub(crate) struct Outcome {
    /// The rows of each statement of the batch, in order.
    pub(crate) results: Vec<Vec<PipelineRow>>,
    /// The column types a `Describe` returned (preparing a statement).
    pub(crate) described: Option<Arc<[Type]>>,
    /// The parameter types a `Describe` returned (preparing a statement).
    pub(crate) parameters: Option<Arc<[Type]>>,
    /// The rows each statement of the batch affected (its command tag), in order.
    pub(crate) counts: Vec<u64>,
    /// The first error PostgreSQL reported; the rest of the batch was skipped.
    pub(crate) error: Option<Error>,
}

/// A batch waiting for its answers.
struct Job {
    /// Whether the caller wants the affected counts (writes): reading a command tag costs a
    /// UTF-8 check and a parse, which reads skip.
    counts: bool,
    /// The column types of the statement being answered, for its rows.
    columns: Arc<[Type]>,
    /// The column types of the job's later statements, in order (a job of several
    /// statements).
    later: Vec<Arc<[Type]>>,
    /// Rows of the statement being answered.
    current: Vec<PipelineRow>,
    outcome: Outcome,
    done: oneshot::Sender<Outcome>,
}

impl Job {
    /// Moves on to the next statement's columns, if the job has several statements.
    fn next_statement(&mut self) {
        if !self.later.is_empty() {
            self.columns = self.later.remove(0);
        }
    }
}

/// Encodes `Bind` (every parameter and column in binary) and `Execute` for `stmt`.
fn bind_execute(
    out: &mut BytesMut,
    stmt: &Prepared,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), Error> {
    let types: &[Type] = &stmt.parameters;
    if params.len() != types.len() {
        return Err(Error::types(format!(
            "the statement takes {} parameters, {} given",
            types.len(),
            params.len()
        )));
    }
    frontend::bind(
        "",
        &stmt.name,
        Some(1),
        params.iter().zip(types),
        |(param, ty), buf| match param.to_sql_checked(ty, buf)? {
            tokio_postgres::types::IsNull::Yes => Ok(postgres_protocol::IsNull::Yes),
            tokio_postgres::types::IsNull::No => Ok(postgres_protocol::IsNull::No),
        },
        Some(1),
        out,
    )
    .map_err(|e| match e {
        frontend::BindError::Conversion(e) => Error::types(e.to_string()),
        frontend::BindError::Serialization(e) => Error::types(e.to_string()),
    })?;
    frontend::execute("", 0, out)
        .map_err(|e| Error::types(format!("cannot encode the statement: {e}")))
}

/// A statement prepared on this connection.
#[derive(Clone)]
pub(crate) struct Prepared {
    pub(crate) name: Rc<str>,
    pub(crate) columns: Arc<[Type]>,
    /// The types parameters are encoded as: declared, or as the server inferred them.
    pub(crate) parameters: Arc<[Type]>,
}

/// A live pipeline connection, shared by the writer task, the reader task and the callers.
pub(crate) struct Conn {
    /// Encoded batches not yet handed to the writer.
    out: RefCell<BytesMut>,
    /// Batches sent or about to be, oldest first.
    jobs: RefCell<VecDeque<Job>>,
    /// Wakes the writer: there are bytes to send, or the connection closed.
    wake_writer: Notify,
    closed: Rc<Closed>,
    /// Statements prepared here, by [`PipelineStatement`](super::PipelineStatement) id.
    prepared: RefCell<Vec<Option<Prepared>>>,
    /// The next statement name (`p0`, `p1`, …): unique on this connection, so two callers
    /// preparing the same statement at once cannot collide.
    next_name: Cell<u32>,
}

impl Conn {
    /// Runs the startup handshake on `stream`, then starts the writer and reader tasks.
    ///
    /// # Errors
    /// A connect error: the server refused the user, the password or the database, or the
    /// socket failed.
    pub(crate) async fn open<S>(mut stream: S, config: &Config) -> Result<Rc<Conn>, Error>
    where
        S: Split + AsyncReadRent + AsyncWriteRent + 'static,
    {
        let leftover = handshake(&mut stream, config).await?;
        let (reader, writer) = stream.into_split();
        let conn = Rc::new(Conn {
            out: RefCell::new(BytesMut::new()),
            jobs: RefCell::new(VecDeque::new()),
            wake_writer: Notify::new(),
            closed: Rc::new(Closed::default()),
            prepared: RefCell::new(Vec::new()),
            next_name: Cell::new(0),
        });
        monoio::spawn(write_loop(Rc::clone(&conn), writer));
        monoio::spawn(read_loop(Rc::clone(&conn), reader, leftover));
        Ok(conn)
    }

    /// Whether the socket is still up.
    pub(crate) fn is_open(&self) -> bool {
        !self.closed.is_closed()
    }

    /// Completes once the connection has ended.
    pub(crate) async fn wait_closed(&self) {
        self.closed.wait().await;
    }

    /// Ends the connection: queued and in-flight batches fail as "connection lost" (their
    /// senders are dropped), and the writer says goodbye to the server and stops.
    pub(crate) fn close(&self) {
        if self.closed.is_closed() {
            return;
        }
        self.closed.set();
        self.jobs.borrow_mut().clear();
        self.wake_writer.notify_one();
    }

    /// The statement with `id`, if it is prepared here.
    pub(crate) fn prepared(&self, id: usize) -> Option<Prepared> {
        self.prepared.borrow().get(id).cloned().flatten()
    }

    /// Queues `Parse` and `Describe` for `sql` under a new name; the outcome carries the
    /// column types. Call [`remember`](Self::remember) with them once it succeeded.
    pub(crate) fn prepare(
        &self,
        sql: &str,
        types: &[Type],
    ) -> Result<(Rc<str>, oneshot::Receiver<Outcome>), Error> {
        let n = self.next_name.get();
        self.next_name.set(n.wrapping_add(1));
        let name: Rc<str> = format!("p{n}").into();
        let rx = self.submit(Arc::from([]), Vec::new(), false, |out| {
            frontend::parse(&name, sql, types.iter().map(Type::oid), out)
                .map_err(|e| Error::types(format!("cannot encode the statement: {e}")))?;
            frontend::describe(b'S', &name, out)
                .map_err(|e| Error::types(format!("cannot encode the statement: {e}")))?;
            frontend::sync(out);
            Ok(())
        })?;
        Ok((name, rx))
    }

    /// Records that statement `id` is prepared here under `name`.
    pub(crate) fn remember(&self, id: usize, prepared: Prepared) {
        let mut all = self.prepared.borrow_mut();
        if all.len() <= id {
            all.resize(id + 1, None);
        }
        all[id] = Some(prepared);
    }

    /// Queues one `Bind`/`Execute` per parameter set of `sets` for the prepared statement,
    /// and one `Sync` after them.
    ///
    /// # Errors
    /// A query error when a set has the wrong number of parameters or a value does not fit
    /// its declared type; nothing is queued then. Connection lost when it is closed.
    pub(crate) fn query<'p, I>(
        &self,
        stmt: &Prepared,
        sets: I,
        counts: bool,
    ) -> Result<oneshot::Receiver<Outcome>, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[&'p (dyn ToSql + Sync)]>,
    {
        self.submit(Arc::clone(&stmt.columns), Vec::new(), counts, |out| {
            for set in sets {
                bind_execute(out, stmt, set.as_ref())?;
            }
            frontend::sync(out);
            Ok(())
        })
    }

    /// Queues one `Bind`/`Execute` per part, each its own prepared statement, and one `Sync`
    /// after them: one implicit transaction (a write and its `pg_notify` commit together).
    ///
    /// # Errors
    /// As [`query`](Self::query); nothing is queued for an empty `parts`.
    pub(crate) fn query_each(
        &self,
        parts: &[(&Prepared, &[&(dyn ToSql + Sync)])],
        counts: bool,
    ) -> Result<oneshot::Receiver<Outcome>, Error> {
        let Some(((first, _), rest)) = parts.split_first() else {
            return Err(Error::invalid("an empty batch"));
        };
        let later = rest.iter().map(|(p, _)| Arc::clone(&p.columns)).collect();
        self.submit(Arc::clone(&first.columns), later, counts, |out| {
            for (stmt, params) in parts {
                bind_execute(out, stmt, params)?;
            }
            frontend::sync(out);
            Ok(())
        })
    }

    /// Encodes a job into the output buffer and queues it, in one step (so that jobs and
    /// their bytes keep the same order), then wakes the writer. On an encoding error the
    /// buffer is put back as it was.
    fn submit(
        &self,
        columns: Arc<[Type]>,
        later: Vec<Arc<[Type]>>,
        counts: bool,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
    ) -> Result<oneshot::Receiver<Outcome>, Error> {
        if self.closed.is_closed() {
            return Err(Error::connection_lost(None));
        }
        let mut out = self.out.borrow_mut();
        let mark = out.len();
        if let Err(e) = encode(&mut out) {
            out.truncate(mark);
            return Err(e);
        }
        drop(out);
        let (done, rx) = oneshot::channel();
        self.jobs.borrow_mut().push_back(Job {
            counts,
            columns,
            later,
            current: Vec::new(),
            outcome: Outcome::default(),
            done,
        });
        self.wake_writer.notify_one();
        Ok(rx)
    }

    /// Hands one message to the oldest job; false when the stream makes no sense (a message
    /// no job waits for, one that has no place here) or the server ended the session.
    fn dispatch(&self, msg: Message) -> bool {
        match msg {
            Message::ParameterStatus(_)
            | Message::NoticeResponse(_)
            | Message::NotificationResponse(_) => return true,
            _ => {}
        }
        let mut jobs = self.jobs.borrow_mut();
        let Some(job) = jobs.front_mut() else {
            if let Message::ErrorResponse(body) = &msg {
                let (_, code, message) = error_fields(body);
                tracing::warn!(%code, %message, "database pipeline connection ended by the server");
            } else {
                tracing::warn!("database pipeline: an answer no batch waits for");
            }
            return false;
        };
        match msg {
            Message::ParseComplete | Message::BindComplete | Message::CloseComplete => {}
            Message::ParameterDescription(body) => match parameter_types(&body) {
                Ok(types) => job.outcome.parameters = Some(types),
                Err(e) => {
                    job.outcome.error.get_or_insert(e);
                }
            },
            Message::RowDescription(body) => match column_types(&body) {
                Ok(types) => job.outcome.described = Some(types),
                Err(e) => {
                    job.outcome.error.get_or_insert(e);
                }
            },
            Message::NoData => job.outcome.described = Some(Arc::from([])),
            Message::DataRow(body) => job
                .current
                .push(PipelineRow::new(Arc::clone(&job.columns), body)),
            Message::CommandComplete(body) => {
                let rows = std::mem::take(&mut job.current);
                job.outcome.results.push(rows);
                if job.counts {
                    job.outcome.counts.push(affected(body.tag().unwrap_or("")));
                }
                job.next_statement();
            }
            Message::EmptyQueryResponse | Message::PortalSuspended => {
                let rows = std::mem::take(&mut job.current);
                job.outcome.results.push(rows);
                if job.counts {
                    job.outcome.counts.push(0);
                }
                job.next_statement();
            }
            Message::ErrorResponse(body) => {
                let (severity, code, message) = error_fields(&body);
                if severity == "FATAL" || severity == "PANIC" {
                    // The session is over (pg_terminate_backend, a shutdown): not this
                    // batch's fault, and the socket closes next.
                    tracing::warn!(%code, %message, "database pipeline connection ended by the server");
                    return false;
                }
                job.outcome
                    .error
                    .get_or_insert_with(|| Error::server(&code, &message));
            }
            Message::ReadyForQuery(_) => {
                if let Some(job) = jobs.pop_front() {
                    // The caller may have given up (a deadline): nobody to tell then.
                    let _ = job.done.send(job.outcome);
                }
            }
            _ => {
                tracing::warn!("database pipeline: an unexpected message");
                return false;
            }
        }
        true
    }
}

/// The severity, SQLSTATE and message of an error response.
fn error_fields(body: &ErrorResponseBody) -> (String, String, String) {
    let (mut severity, mut code, mut message) = (String::new(), String::new(), String::new());
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            // `V` is the untranslated severity (9.6+); `S` may be localised.
            b'V' => severity = value,
            b'S' if severity.is_empty() => severity = value,
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
    }
    (severity, code, message)
}

/// The rows a command tag says its statement affected: the last word of `UPDATE 5`,
/// `INSERT 0 5`, `DELETE 5`, `SELECT 5`; 0 for a tag without a count (`CREATE TABLE`).
fn affected(tag: &str) -> u64 {
    tag.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The parameter types the server inferred for a statement; a type this client does not know
/// is an error (values could not be encoded for it).
fn parameter_types(
    body: &postgres_protocol::message::backend::ParameterDescriptionBody,
) -> Result<Arc<[Type]>, Error> {
    let mut types = Vec::new();
    let mut oids = body.parameters();
    loop {
        match oids.next() {
            Ok(Some(oid)) => types.push(Type::from_oid(oid).ok_or_else(|| {
                Error::types(format!(
                    "parameter ${} has a type this client does not know (oid {oid})",
                    types.len() + 1
                ))
            })?),
            Ok(None) => return Ok(types.into()),
            Err(e) => {
                return Err(Error::types(format!(
                    "malformed parameter description: {e}"
                )))
            }
        }
    }
}

/// The column types of a row description; a type this client does not know is an error
/// (its values could not be decoded).
fn column_types(body: &RowDescriptionBody) -> Result<Arc<[Type]>, Error> {
    let mut types = Vec::new();
    let mut fields = body.fields();
    loop {
        match fields.next() {
            Ok(Some(field)) => types.push(Type::from_oid(field.type_oid()).ok_or_else(|| {
                Error::types(format!(
                    "column `{}` has a type this client does not know (oid {})",
                    field.name(),
                    field.type_oid()
                ))
            })?),
            Ok(None) => return Ok(types.into()),
            Err(e) => return Err(Error::types(format!("malformed row description: {e}"))),
        }
    }
}

/// Sends what accumulates in `conn.out`, one write per wake-up, until the connection closes;
/// then sends `Terminate`, so that the server closes the socket and the reader stops.
async fn write_loop<W: AsyncWriteRent>(conn: Rc<Conn>, mut writer: W) {
    loop {
        if conn.closed.is_closed() {
            let mut bye = BytesMut::new();
            frontend::terminate(&mut bye);
            let _ = writer.write_all(bye).await;
            let _ = writer.shutdown().await;
            return;
        }
        let batch = {
            let mut out = conn.out.borrow_mut();
            (!out.is_empty()).then(|| out.split())
        };
        match batch {
            Some(batch) => {
                let (result, _) = writer.write_all(batch).await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "database pipeline connection lost (write)");
                    conn.close();
                }
            }
            // `notify_one` keeps a permit when nobody waits: a wake-up between the check and
            // this wait is not lost.
            None => conn.wake_writer.notified().await,
        }
    }
}

/// Reads answers and hands them to the jobs until the socket ends or makes no sense.
async fn read_loop<R: AsyncReadRent>(conn: Rc<Conn>, mut reader: R, mut buf: BytesMut) {
    loop {
        loop {
            match Message::parse(&mut buf) {
                Ok(Some(msg)) => {
                    if !conn.dispatch(msg) {
                        conn.close();
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "database pipeline: malformed message");
                    conn.close();
                    return;
                }
            }
        }
        if conn.closed.is_closed() {
            return;
        }
        let result;
        (result, buf) = read_more(&mut reader, buf).await;
        match result {
            Ok(0) => {
                if !conn.closed.is_closed() {
                    tracing::warn!("database pipeline connection lost (closed by the server)");
                }
                conn.close();
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "database pipeline connection lost (read)");
                conn.close();
                return;
            }
        }
    }
}

/// Reads into `buf` after what it holds (a partial message stays in front of its rest).
///
/// monoio reads into a `BytesMut` from its start, over what it holds: the read goes into the
/// spare room as a slice.
async fn read_more<R: AsyncReadRent>(
    reader: &mut R,
    mut buf: BytesMut,
) -> (std::io::Result<usize>, BytesMut) {
    if buf.capacity() - buf.len() < READ_MIN {
        buf.reserve(READ_SIZE);
    }
    let (len, cap) = (buf.len(), buf.capacity());
    let (result, slice) = reader.read(buf.slice_mut(len..cap)).await;
    (result, slice.into_inner())
}

/// The startup message and authentication (trust, password, MD5 or SCRAM-SHA-256), up to the
/// first `ReadyForQuery`; returns what was read past it.
async fn handshake<S>(stream: &mut S, config: &Config) -> Result<BytesMut, Error>
where
    S: AsyncReadRent + AsyncWriteRent,
{
    let user = config
        .get_user()
        .ok_or_else(|| Error::config("the database URL names no user"))?;
    let mut params = vec![("user", user), ("client_encoding", "UTF8")];
    if let Some(db) = config.get_dbname() {
        params.push(("database", db));
    }
    params.push((
        "application_name",
        config.get_application_name().unwrap_or("pinion-pipeline"),
    ));
    if let Some(options) = config.get_options() {
        params.push(("options", options));
    }
    let mut out = BytesMut::new();
    frontend::startup_message(params, &mut out).map_err(Error::connect)?;
    send(stream, &mut out).await?;
    let password = || {
        config
            .get_password()
            .ok_or_else(|| Error::connect("the server asks for a password and the URL has none"))
    };
    let mut buf = BytesMut::new();
    loop {
        match receive(stream, &mut buf).await? {
            Message::AuthenticationOk
            | Message::ParameterStatus(_)
            | Message::BackendKeyData(_)
            | Message::NoticeResponse(_) => {}
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(password()?, &mut out).map_err(Error::connect)?;
                send(stream, &mut out).await?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = md5_hash(user.as_bytes(), password()?, body.salt());
                frontend::password_message(hash.as_bytes(), &mut out).map_err(Error::connect)?;
                send(stream, &mut out).await?;
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut scram = false;
                while let Ok(Some(m)) = mechanisms.next() {
                    scram |= m == sasl::SCRAM_SHA_256;
                }
                if !scram {
                    return Err(Error::connect(
                        "the server offers no SASL mechanism this client speaks (SCRAM-SHA-256)",
                    ));
                }
                // No TLS here, so no channel binding (SCRAM-SHA-256-PLUS needs it).
                let mut exchange =
                    sasl::ScramSha256::new(password()?, sasl::ChannelBinding::unsupported());
                frontend::sasl_initial_response(sasl::SCRAM_SHA_256, exchange.message(), &mut out)
                    .map_err(Error::connect)?;
                send(stream, &mut out).await?;
                let Message::AuthenticationSaslContinue(body) = receive(stream, &mut buf).await?
                else {
                    return Err(Error::connect("SCRAM: expected the server's first message"));
                };
                exchange.update(body.data()).map_err(Error::connect)?;
                frontend::sasl_response(exchange.message(), &mut out).map_err(Error::connect)?;
                send(stream, &mut out).await?;
                match receive(stream, &mut buf).await? {
                    Message::AuthenticationSaslFinal(body) => {
                        exchange.finish(body.data()).map_err(Error::connect)?
                    }
                    Message::ErrorResponse(body) => return Err(refused(&body)),
                    _ => return Err(Error::connect("SCRAM: expected the server's final message")),
                }
            }
            Message::ReadyForQuery(_) => return Ok(buf),
            Message::ErrorResponse(body) => return Err(refused(&body)),
            _ => {
                return Err(Error::connect(
                    "the server asked for an authentication method this client does not speak",
                ))
            }
        }
    }
}

/// The error for a refused startup: the server's own words.
fn refused(body: &ErrorResponseBody) -> Error {
    let (severity, code, message) = error_fields(body);
    Error::connect(format!("{severity}: {message} ({code})"))
}

/// Writes `out` and empties it.
async fn send<S: AsyncWriteRent>(stream: &mut S, out: &mut BytesMut) -> Result<(), Error> {
    let (result, _) = stream.write_all(out.split()).await;
    result.map(|_| ()).map_err(Error::connect)
}

/// The next message, reading more as needed.
async fn receive<S: AsyncReadRent>(stream: &mut S, buf: &mut BytesMut) -> Result<Message, Error> {
    loop {
        if let Some(msg) = Message::parse(buf).map_err(Error::connect)? {
            return Ok(msg);
        }
        let result;
        (result, *buf) = read_more(stream, std::mem::take(buf)).await;
        match result {
            Ok(0) => {
                return Err(Error::connect(
                    "the server closed the connection during startup",
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(Error::connect(e)),
        }
    }
}
