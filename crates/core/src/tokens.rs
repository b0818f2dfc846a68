//! Tokens for the CLIP text encoder: OpenAI's CLIP BPE through the `tokenizers` crate, A1111's
//! 75-token chunks with BOS/EOS, padding per model family, `BREAK` and comma backtracking, and a
//! weight per token from the emphasis.
//!
//! Text is cleaned first the way OpenAI's tokenizer does (ftfy, HTML unescaping twice, whitespace
//! folding, lower case). Of ftfy this implements: mojibake from UTF-8 read as Windows-1252 (the
//! common case, without ftfy's badness scoring), Latin ligatures, full-width ASCII and the
//! ideographic space, curly quotes, control characters. Half-width katakana and other width forms,
//! and mojibake through other encodings, are not fixed (see `docs/compat.md`).

use thiserror::Error;

use crate::prompt::{
    Chunk, Fidelity, ScheduleOptions, parse_attention, prompt_schedule, split_and,
};

/// Tokens per chunk, without BOS and EOS.
pub const CHUNK_TOKENS: usize = 75;
/// Tokens per chunk fed to the encoder (BOS + 75 + EOS).
pub const CONTEXT_LENGTH: usize = CHUNK_TOKENS + 2;
/// `<|startoftext|>`.
pub const BOS: u32 = 49406;
/// `<|endoftext|>`.
pub const EOS: u32 = 49407;
/// A1111's default "comma padding backtrack": how far back a comma may be to move the rest of an
/// overflowing chunk into the next one.
pub const COMMA_BACKTRACK: usize = 20;

/// Which encoder the tokens are for: it decides the padding token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    /// SD 1.x (OpenAI CLIP ViT-L/14): pads with EOS (49407).
    Sd1,
    /// SD 2.x (OpenCLIP ViT-H/14): pads with 0 after the first EOS.
    Sd2,
}

impl ModelFamily {
    /// The padding token.
    pub fn pad_token(self) -> u32 {
        match self {
            Self::Sd1 => EOS,
            Self::Sd2 => 0,
        }
    }
}

/// Why tokens could not be produced.
#[derive(Debug, Error)]
pub enum TokenError {
    /// The tokenizer description could not be read.
    #[error("cannot read the tokenizer: {0}")]
    Load(String),
    /// The embedded vocabulary could not be inflated.
    #[error("cannot inflate the embedded CLIP vocabulary")]
    Inflate,
    /// The tokenizer has no `,</w>` token (not a CLIP vocabulary).
    #[error("the tokenizer has no comma token; is it CLIP's?")]
    NoComma,
    /// Encoding failed inside the tokenizer.
    #[error("cannot tokenize {text:?}: {message}")]
    Encode {
        /// The text.
        text: String,
        /// The tokenizer's message.
        message: String,
    },
}

/// One 77-token chunk for the encoder, with a weight per token.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TokenChunk {
    /// BOS, 75 tokens (padded), EOS: 77 ids.
    pub ids: Vec<u32>,
    /// The emphasis weight of each id (1 for BOS, EOS and padding).
    pub weights: Vec<f64>,
}

/// A prompt's chunks.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TokenizedPrompt {
    /// At least one chunk.
    pub chunks: Vec<TokenChunk>,
    /// A1111's token count (75 per full chunk, plus the tokens of the last one).
    pub token_count: usize,
}

impl TokenizedPrompt {
    /// The tokens of text in each chunk (BREAK and comma backtracking leave a chunk short).
    pub fn chunk_lengths(&self) -> Vec<usize> {
        self.chunks
            .iter()
            .map(|c| {
                c.ids
                    .iter()
                    .skip(1)
                    .position(|&id| id == EOS)
                    .unwrap_or(CHUNK_TOKENS)
            })
            .collect()
    }
}

/// What A1111's token counter shows beside a prompt box (`update_token_counter`): the most
/// tokens of any `AND` part (positive prompts only) at any step of its schedule, out of 75 per
/// chunk.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenCount {
    /// A1111's count: 75 for each full chunk, plus the tokens of the last.
    pub tokens: usize,
    /// 75 per chunk.
    pub limit: usize,
    /// The tokens of text in each chunk of the longest variant.
    pub chunks: Vec<usize>,
}

impl TokenCount {
    /// `12/75`, and for more than one chunk the chunks: `80/150 (70 + 10)`.
    pub fn text(&self) -> String {
        let head = format!("{}/{}", self.tokens, self.limit);
        if self.chunks.len() < 2 {
            return head;
        }
        let parts: Vec<String> = self.chunks.iter().map(ToString::to_string).collect();
        format!("{head} ({})", parts.join(" + "))
    }
}

/// OpenAI's CLIP BPE tokenizer.
pub struct ClipTokenizer {
    inner: tokenizers::Tokenizer,
    comma: u32,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("comma", &self.comma)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "embedded-clip-vocab")]
static EMBEDDED_TOKENIZER_DEFLATED: &[u8] = include_bytes!("../data/clip-tokenizer.json.deflate");

/// Upper bound for the inflated `tokenizer.json` (it is 3.6 MB).
#[cfg(feature = "embedded-clip-vocab")]
const MAX_TOKENIZER_JSON_BYTES: usize = 16 << 20;

impl ClipTokenizer {
    /// Reads a Hugging Face `tokenizer.json` for CLIP.
    pub fn from_tokenizer_json(bytes: &[u8]) -> Result<Self, TokenError> {
        let inner = tokenizers::Tokenizer::from_bytes(bytes)
            .map_err(|e| TokenError::Load(e.to_string()))?;
        let comma = inner.token_to_id(",</w>").ok_or(TokenError::NoComma)?;
        Ok(Self { inner, comma })
    }

    /// The tokenizer of SD 1.x and SD 2.x (OpenAI's CLIP vocabulary), embedded in this crate.
    #[cfg(feature = "embedded-clip-vocab")]
    pub fn embedded() -> Result<Self, TokenError> {
        let json = miniz_oxide::inflate::decompress_to_vec_with_limit(
            EMBEDDED_TOKENIZER_DEFLATED,
            MAX_TOKENIZER_JSON_BYTES,
        )
        .map_err(|_| TokenError::Inflate)?;
        Self::from_tokenizer_json(&json)
    }

    /// The token ids of `text` after OpenAI's cleanup, without BOS/EOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenError> {
        let cleaned = clean_text(text);
        let encoding =
            self.inner
                .encode(cleaned.as_str(), false)
                .map_err(|e| TokenError::Encode {
                    text: text.to_owned(),
                    message: e.to_string(),
                })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// What SD 1.x feeds its encoder for a plain text (no prompt syntax): BOS, the first 75
    /// tokens, EOS, padded to 77 with the family's padding.
    pub fn context_ids(&self, text: &str, family: ModelFamily) -> Result<Vec<u32>, TokenError> {
        let ids = self.encode(text)?;
        let mut out = Vec::with_capacity(CONTEXT_LENGTH);
        out.push(BOS);
        out.extend(ids.iter().take(CHUNK_TOKENS));
        out.push(EOS);
        out.resize(CONTEXT_LENGTH, family.pad_token());
        Ok(out)
    }

    /// A1111's chunking of emphasis chunks: 75 tokens per chunk, `BREAK` starts a new chunk, and
    /// an overflowing chunk moves everything after its last comma (if within
    /// [`COMMA_BACKTRACK`] tokens) into the next one.
    pub fn prompt_chunks(
        &self,
        chunks: &[Chunk],
        family: ModelFamily,
    ) -> Result<TokenizedPrompt, TokenError> {
        let mut builder = ChunkBuilder::new(self.comma);
        for chunk in chunks {
            match chunk {
                Chunk::Break => builder.next_chunk(false),
                Chunk::Text { text, weight } => {
                    for id in self.encode(text)? {
                        builder.push(id, *weight);
                    }
                }
            }
        }
        Ok(builder.finish(family))
    }
}

impl ClipTokenizer {
    /// A1111's token counter for a prompt box of a `steps`-step pass. `positive` prompts are
    /// split at `AND`, negative ones are not (as in A1111). Text whose schedule or emphasis does
    /// not parse is counted as written.
    pub fn count_tokens(
        &self,
        prompt: &str,
        steps: u32,
        positive: bool,
    ) -> Result<TokenCount, TokenError> {
        let parts: Vec<String> = if positive {
            split_and(prompt).into_iter().map(|p| p.text).collect()
        } else {
            vec![prompt.to_owned()]
        };
        let mut texts = Vec::new();
        for part in parts {
            match prompt_schedule(&part, ScheduleOptions::steps(steps)) {
                Ok(entries) => texts.extend(entries.into_iter().map(|e| e.text)),
                Err(_) => texts.push(part),
            }
        }
        let mut best: Option<TokenizedPrompt> = None;
        for text in texts {
            let chunks = parse_attention(&text, Fidelity::Keyshift).unwrap_or_else(|_| {
                vec![Chunk::Text {
                    text: text.clone(),
                    weight: 1.0,
                }]
            });
            let tokenized = self.prompt_chunks(&chunks, ModelFamily::Sd1)?;
            if best
                .as_ref()
                .is_none_or(|b| tokenized.token_count > b.token_count)
            {
                best = Some(tokenized);
            }
        }
        let (tokens, chunks) = best.map_or((0, vec![0]), |b| (b.token_count, b.chunk_lengths()));
        Ok(TokenCount {
            tokens,
            limit: tokens.max(1).div_ceil(CHUNK_TOKENS) * CHUNK_TOKENS,
            chunks,
        })
    }
}

/// What a position of a prompt's context holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// The start token opening each 77-token chunk.
    Start,
    /// A token of the prompt's text.
    Word,
    /// The end token after a chunk's text.
    End,
    /// Padding up to the chunk's 77 positions.
    Padding,
}

/// One position of a prompt's context (`77 · chunks` positions), as a token picker shows it:
/// what a heatmap of that position reads.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TokenChip {
    /// The position in the context (0 is the first chunk's start token).
    pub index: usize,
    /// The BPE piece (`</w>`, the end of a word, dropped); empty for start, end and padding.
    pub text: String,
    /// A1111's emphasis weight.
    pub weight: f64,
    /// What the position holds.
    pub kind: TokenKind,
    /// Which 77-token chunk it is in.
    pub chunk: usize,
}

impl ClipTokenizer {
    /// The positions of the context a prompt is encoded to: its first `AND` part at the first
    /// step of its schedule, with A1111's emphasis and chunking (what a heatmap's token
    /// indices count).
    pub fn chips(&self, prompt: &str) -> Result<Vec<TokenChip>, TokenError> {
        let part = split_and(prompt)
            .into_iter()
            .next()
            .map_or_else(String::new, |p| p.text);
        let text = prompt_schedule(&part, ScheduleOptions::steps(1))
            .ok()
            .and_then(|e| e.into_iter().next())
            .map_or(part, |e| e.text);
        let chunks = parse_attention(&text, Fidelity::Keyshift).unwrap_or_else(|_| {
            vec![Chunk::Text {
                text: text.clone(),
                weight: 1.0,
            }]
        });
        let tokenized = self.prompt_chunks(&chunks, ModelFamily::Sd1)?;
        let lengths = tokenized.chunk_lengths();
        let mut out = Vec::new();
        for (c, chunk) in tokenized.chunks.iter().enumerate() {
            let words = lengths.get(c).copied().unwrap_or(0);
            for (p, (&id, &weight)) in chunk.ids.iter().zip(&chunk.weights).enumerate() {
                let kind = match p {
                    0 => TokenKind::Start,
                    p if p <= words => TokenKind::Word,
                    p if p == words + 1 => TokenKind::End,
                    _ => TokenKind::Padding,
                };
                let text = match kind {
                    TokenKind::Word => self.piece(id),
                    _ => String::new(),
                };
                out.push(TokenChip {
                    index: c * CONTEXT_LENGTH + p,
                    text,
                    weight,
                    kind,
                    chunk: c,
                });
            }
        }
        Ok(out)
    }

    /// The BPE piece of `id`, without the end-of-word mark.
    fn piece(&self, id: u32) -> String {
        let piece = self.inner.id_to_token(id).unwrap_or_default();
        piece.strip_suffix("</w>").unwrap_or(&piece).to_owned()
    }
}

/// A1111's `tokenize_line` loop.
struct ChunkBuilder {
    comma: u32,
    chunks: Vec<TokenChunk>,
    ids: Vec<u32>,
    weights: Vec<f64>,
    last_comma: Option<usize>,
    token_count: usize,
}

impl ChunkBuilder {
    fn new(comma: u32) -> Self {
        Self {
            comma,
            chunks: Vec::new(),
            ids: Vec::new(),
            weights: Vec::new(),
            last_comma: None,
            token_count: 0,
        }
    }

    fn push(&mut self, id: u32, weight: f64) {
        if id == self.comma {
            self.last_comma = Some(self.ids.len());
        } else if let Some(comma) = self.backtrack_point() {
            let moved_ids = self.ids.split_off(comma + 1);
            let moved_weights = self.weights.split_off(comma + 1);
            self.next_chunk(false);
            self.ids = moved_ids;
            self.weights = moved_weights;
        }
        if self.ids.len() == CHUNK_TOKENS {
            self.next_chunk(false);
        }
        self.ids.push(id);
        self.weights.push(weight);
    }

    /// The comma to break after, when the chunk is full and one is close enough.
    fn backtrack_point(&self) -> Option<usize> {
        let comma = self.last_comma?;
        (self.ids.len() == CHUNK_TOKENS && self.ids.len() - comma <= COMMA_BACKTRACK)
            .then_some(comma)
    }

    fn next_chunk(&mut self, is_last: bool) {
        self.token_count += if is_last {
            self.ids.len()
        } else {
            CHUNK_TOKENS
        };
        let mut ids = Vec::with_capacity(CONTEXT_LENGTH);
        ids.push(BOS);
        ids.append(&mut self.ids);
        let mut weights = Vec::with_capacity(CONTEXT_LENGTH);
        weights.push(1.0);
        weights.append(&mut self.weights);
        ids.resize(CHUNK_TOKENS + 1, EOS);
        weights.resize(CHUNK_TOKENS + 1, 1.0);
        ids.push(EOS);
        weights.push(1.0);
        self.chunks.push(TokenChunk { ids, weights });
        self.last_comma = None;
    }

    fn finish(mut self, family: ModelFamily) -> TokenizedPrompt {
        if !self.ids.is_empty() || self.chunks.is_empty() {
            self.next_chunk(true);
        }
        if family.pad_token() != EOS {
            for chunk in &mut self.chunks {
                pad_after_first_eos(&mut chunk.ids, family.pad_token());
            }
        }
        TokenizedPrompt {
            chunks: self.chunks,
            token_count: self.token_count,
        }
    }
}

fn pad_after_first_eos(ids: &mut [u32], pad: u32) {
    if let Some(first) = ids.iter().position(|&id| id == EOS) {
        for id in ids.iter_mut().skip(first + 1) {
            *id = pad;
        }
    }
}

/// OpenAI's cleanup before BPE: ftfy (the parts listed in the module docs), then HTML unescaping
/// twice. Whitespace folding and lower-casing are done by the tokenizer's normalizer.
pub fn clean_text(text: &str) -> String {
    // ftfy unescapes `&…;` references itself, unless the text looks like HTML.
    let text = if text.contains('<') {
        text.to_owned()
    } else {
        unescape(text, true)
    };
    let fixed = fix_mojibake(&text);
    let fixed: String = fixed.chars().filter_map(fix_char).collect();
    let fixed = expand_ligatures(&fixed);
    html_unescape(&html_unescape(&fixed))
}

/// ftfy's per-character fixes: full-width ASCII, the ideographic space, curly quotes, and control
/// characters (removed).
fn fix_char(c: char) -> Option<char> {
    let cp = u32::from(c);
    match cp {
        0xFF01..=0xFF5E => char::from_u32(cp - 0xFEE0),
        0x3000 => Some(' '),
        0x02BC | 0x2018..=0x201B => Some('\''),
        0x201C..=0x201F => Some('"'),
        0x00..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFC => {
            None
        }
        _ => Some(c),
    }
}

fn expand_ligatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let expansion = match c {
            'Ĳ' => "IJ",
            'ĳ' => "ij",
            'ŉ' => "ʼn",
            'Ǳ' => "DZ",
            'ǲ' => "Dz",
            'ǳ' => "dz",
            'Ǆ' => "DŽ",
            'ǅ' => "Dž",
            'ǆ' => "dž",
            'Ǉ' => "LJ",
            'ǈ' => "Lj",
            'ǉ' => "lj",
            'Ǌ' => "NJ",
            'ǋ' => "Nj",
            'ǌ' => "nj",
            'ﬀ' => "ff",
            'ﬁ' => "fi",
            'ﬂ' => "fl",
            'ﬃ' => "ffi",
            'ﬄ' => "ffl",
            'ﬅ' => "ſt",
            'ﬆ' => "st",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(expansion);
    }
    out
}

/// Windows-1252 bytes 0x80..=0x9F (undefined ones map to the C1 control, as in ftfy's
/// "sloppy-windows-1252").
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

/// The Windows-1252 byte of a non-ASCII character, if it has one.
fn cp1252_byte(c: char) -> Option<u8> {
    let cp = u32::from(c);
    if (0xA0..=0xFF).contains(&cp) {
        return u8::try_from(cp).ok();
    }
    let i = CP1252_HIGH.iter().position(|&h| h == c)?;
    u8::try_from(0x80 + i).ok()
}

/// Repairs UTF-8 text that was decoded as Windows-1252 (possibly more than once): every run of
/// non-ASCII characters that encodes to valid UTF-8 bytes is replaced by their decoding.
fn fix_mojibake(text: &str) -> String {
    let mut current = text.to_owned();
    for _ in 0..4 {
        let next = fix_mojibake_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn fix_mojibake_once(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run: Vec<u8> = Vec::new();
    let mut run_text = String::new();
    for c in text.chars() {
        match cp1252_byte(c) {
            Some(b) => {
                run.push(b);
                run_text.push(c);
            }
            None => {
                flush_run(&mut out, &mut run, &mut run_text);
                out.push(c);
            }
        }
    }
    flush_run(&mut out, &mut run, &mut run_text);
    out
}

fn flush_run(out: &mut String, run: &mut Vec<u8>, run_text: &mut String) {
    match std::str::from_utf8(run) {
        Ok(decoded) if run.len() > 1 => out.push_str(decoded),
        _ => out.push_str(run_text),
    }
    run.clear();
    run_text.clear();
}

/// Python's `html.unescape` for numeric references and a subset of named ones.
pub fn html_unescape(text: &str) -> String {
    unescape(text, false)
}

/// Replaces character references; `terminated`: only those ending in `;` (ftfy's rule).
fn unescape(text: &str, terminated: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        match reference(after)
            .filter(|(_, len)| !terminated || after.get(..*len).is_some_and(|r| r.ends_with(';')))
        {
            Some((replacement, len)) => {
                out.push_str(&replacement);
                rest = after.get(len..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The replacement for the reference after an `&`, and the bytes it spans.
fn reference(after: &str) -> Option<(String, usize)> {
    if let Some(num) = after.strip_prefix('#') {
        let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (num, 10, 1),
        };
        let len = digits.chars().take_while(|c| c.is_digit(radix)).count();
        if len == 0 {
            return None;
        }
        let value = u32::from_str_radix(digits.get(..len)?, radix).unwrap_or(u32::MAX);
        let semicolon = usize::from(digits.get(len..)?.starts_with(';'));
        return Some((numeric_reference(value), skip + len + semicolon));
    }
    named_reference(after)
}

fn numeric_reference(value: u32) -> String {
    match value {
        0 => "\u{FFFD}".to_owned(),
        0x80..=0x9F => CP1252_HIGH
            .get(usize::try_from(value - 0x80).unwrap_or(0))
            .map_or(String::new(), char::to_string),
        0x01..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0xFDD0..=0xFDEF => String::new(),
        v if v & 0xFFFE == 0xFFFE && v <= 0x10FFFF => String::new(),
        v => char::from_u32(v).map_or("\u{FFFD}".to_owned(), |c| c.to_string()),
    }
}

/// Named references: `&name;` from a table of common HTML entities, and the legacy forms of
/// `&amp`, `&lt`, `&gt`, `&quot` without a semicolon.
fn named_reference(after: &str) -> Option<(String, usize)> {
    const NAMED: &[(&str, &str)] = &[
        ("amp", "&"),
        ("AMP", "&"),
        ("lt", "<"),
        ("LT", "<"),
        ("gt", ">"),
        ("GT", ">"),
        ("quot", "\""),
        ("QUOT", "\""),
        ("apos", "'"),
        ("nbsp", "\u{a0}"),
        ("copy", "©"),
        ("reg", "®"),
        ("trade", "™"),
        ("hellip", "…"),
        ("mdash", "—"),
        ("ndash", "–"),
        ("lsquo", "‘"),
        ("rsquo", "’"),
        ("ldquo", "“"),
        ("rdquo", "”"),
        ("laquo", "«"),
        ("raquo", "»"),
        ("bull", "•"),
        ("middot", "·"),
        ("deg", "°"),
        ("times", "×"),
        ("divide", "÷"),
        ("plusmn", "±"),
        ("euro", "€"),
        ("pound", "£"),
        ("yen", "¥"),
        ("cent", "¢"),
        ("sect", "§"),
        ("para", "¶"),
        ("frac12", "½"),
        ("frac14", "¼"),
        ("frac34", "¾"),
        ("eacute", "é"),
        ("egrave", "è"),
        ("agrave", "à"),
        ("aacute", "á"),
        ("uuml", "ü"),
        ("ouml", "ö"),
        ("auml", "ä"),
        ("szlig", "ß"),
        ("ccedil", "ç"),
        ("ntilde", "ñ"),
    ];
    let name_len = after
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .map(char::len_utf8)
        .sum::<usize>();
    let name = after.get(..name_len)?;
    if after.get(name_len..)?.starts_with(';')
        && let Some((_, value)) = NAMED.iter().find(|(n, _)| *n == name)
    {
        return Some(((*value).to_owned(), name_len + 1));
    }
    const LEGACY: &[(&str, &str)] = &[
        ("amp", "&"),
        ("AMP", "&"),
        ("lt", "<"),
        ("LT", "<"),
        ("gt", ">"),
        ("GT", ">"),
        ("quot", "\""),
        ("QUOT", "\""),
    ];
    LEGACY
        .iter()
        .find(|(n, _)| after.starts_with(n))
        .map(|(n, value)| ((*value).to_owned(), n.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "embedded-clip-vocab")]
    #[test]
    fn chips_are_the_context_positions_a_heatmap_counts() {
        let Ok(t) = ClipTokenizer::embedded() else {
            panic!("the embedded vocabulary loads");
        };
        let Ok(chips) = t.chips("a photo of a (cat:1.2) AND a dog") else {
            panic!("tokenizes");
        };
        assert_eq!(chips.len(), 77);
        let words: Vec<(usize, &str, f64)> = chips
            .iter()
            .filter(|c| c.kind == TokenKind::Word)
            .map(|c| (c.index, c.text.as_str(), c.weight))
            .collect();
        // "cat" is position 5, as VXA's `1, 3` style indices count (the first AND part only).
        assert_eq!(
            words,
            [
                (1, "a", 1.0),
                (2, "photo", 1.0),
                (3, "of", 1.0),
                (4, "a", 1.0),
                (5, "cat", 1.2)
            ]
        );
        assert_eq!(
            (chips[0].kind, chips[6].kind),
            (TokenKind::Start, TokenKind::End)
        );
        assert!(chips[7..].iter().all(|c| c.kind == TokenKind::Padding));
        // 80 tokens: two chunks, the second starting at position 77.
        let long = vec!["cat"; 80].join(" ");
        let Ok(chips) = t.chips(&long) else {
            panic!("tokenizes");
        };
        assert_eq!(chips.len(), 154);
        assert_eq!((chips[77].kind, chips[77].chunk), (TokenKind::Start, 1));
        assert_eq!(chips[78].text, "cat");
    }

    #[test]
    fn cleanup() {
        assert_eq!(
            clean_text("html &amp; entities &lt;3 &quot;x&quot;"),
            "html & entities <3 \"x\""
        );
        assert_eq!(clean_text("&amp;amp;"), "&");
        assert_eq!(clean_text("&amp;amp;lt;"), "<", "ftfy unescapes once more");
        assert_eq!(
            clean_text("<b> &amp;amp;lt;"),
            "<b> &lt;",
            "not when it looks like HTML"
        );
        assert_eq!(clean_text("&AMP; &ampx"), "& &x");
        assert_eq!(
            clean_text("“smart” ‘quotes’ and ﬁ"),
            "\"smart\" 'quotes' and fi"
        );
        assert_eq!(clean_text("ＦＵＬＬ\u{3000}ｗｉｄｔｈ"), "FULL width");
        assert_eq!(clean_text("doesnÃ¢â‚¬â„¢t"), "doesn't");
        assert_eq!(clean_text("café naïve"), "café naïve");
        assert_eq!(clean_text("&#233;&#x263a;&#128;"), "é☺€");
    }

    #[cfg(feature = "embedded-clip-vocab")]
    #[test]
    fn the_token_counter_counts_as_a1111() {
        let t = ClipTokenizer::embedded().expect("embedded vocabulary");
        let count = |prompt: &str, positive: bool| {
            t.count_tokens(prompt, 20, positive).expect("counts").text()
        };
        assert_eq!(count("", true), "0/75");
        assert_eq!(count("a photo of a cat", true), "5/75");
        assert_eq!(
            count("(cat:1.3), [dog]", true),
            "3/75",
            "emphasis is not text"
        );
        // The longest step of a schedule, the longest AND part.
        assert_eq!(count("[cat:a very long dog description:10]", true), "5/75");
        assert_eq!(count("cat AND dog dog dog", true), "3/75");
        assert_eq!(
            count("cat AND dog dog dog", false),
            "5/75",
            "negatives keep AND"
        );
        // Chunks: 75 counted for each full one; BREAK and comma backtracking leave them short.
        let cats = ["cat"; 80].join(" ");
        assert_eq!(count(&cats, true), "80/150 (75 + 5)");
        assert_eq!(count("a BREAK b", true), "76/150 (1 + 1)");
        let backtracked = format!("{}, {}", ["cat"; 70].join(" "), ["dog"; 10].join(" "));
        assert_eq!(count(&backtracked, true), "85/150 (71 + 10)");
        // Text that does not parse is counted as written.
        let odd = t.count_tokens("[unclosed (cat:", 20, true).expect("counts");
        assert!(odd.tokens >= 2 && odd.limit == 75, "{odd:?}");
    }

    #[test]
    fn sd2_pads_with_zero_after_the_first_eos() {
        let mut ids = vec![BOS, 320, EOS, EOS, EOS];
        pad_after_first_eos(&mut ids, 0);
        assert_eq!(ids, vec![BOS, 320, EOS, 0, 0]);
    }
}
