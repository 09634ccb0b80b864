//! Captions, the state badge, notices and the attract screen, as bevy UI.
//!
//! Text is shaped by bevy's parley with the bundled Amiri font (OFL, Arabic and Latin): Arabic
//! joins and runs right to left, English left to right, and a mixed line is ordered by the
//! Unicode bidi algorithm with the paragraph direction taken from its first strong letter.
//! Each caption is aligned by that direction. The avatar's words are spans, so the word being
//! spoken (from the voice's word timings, on the played-sample clock) is highlighted.

use bevy::prelude::*;
use hiwar_animation::Activity;

use super::{StageClock, StageState};

/// The caption font, relative to the assets folder.
pub const FONT: &str = "fonts/Amiri-Regular.ttf";

const SPOKEN: Color = Color::srgb(0.97, 0.97, 0.97);
const CURRENT: Color = Color::srgb(1.0, 0.80, 0.25);
const UPCOMING: Color = Color::srgb(0.72, 0.74, 0.78);
const PERSON: Color = Color::srgb(0.75, 0.88, 1.0);
/// The avatar's caption line, in percent of the viewport's smaller side.
const AVATAR_VMIN: f32 = 5.0;

/// A word of the avatar's caption and when it is heard (clock samples).
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionWord {
    pub text: String,
    pub start: u64,
    pub end: u64,
}

/// What the captions show.
#[derive(Resource, Default, Debug)]
pub struct Captions {
    /// The person's words: a partial transcript while they speak, then the final one.
    pub person: String,
    pub person_final: bool,
    /// The avatar's words as the answer wrote them, with their timings.
    pub avatar: Vec<CaptionWord>,
    /// Show the answer's tashkeel (an answer asked for full marks, for the voice, would
    /// otherwise read as a children's book).
    pub marks: bool,
    /// The viewport's width over its height (the captions page by it).
    pub aspect: f32,
}

/// How many characters of the avatar's words one page of captions holds: two lines at
/// [`AVATAR_VMIN`] of the viewport's smaller side across 92 % of its width (an average glyph
/// of Amiri is a little under half its size), so the panel never grows over the face.
pub fn page_budget(aspect: f32) -> usize {
    let aspect = if aspect.is_finite() && aspect > 0.0 { aspect } else { 16.0 / 9.0 };
    (2.0 * 0.92 * 100.0 * aspect.max(1.0) / (AVATAR_VMIN * 0.48) * 0.9) as usize
}

/// The avatar's words in pages of at most `budget` characters (a word longer than that is a
/// page of its own), a sentence's end closing a page that is half full.
pub fn pages(words: &[&str], budget: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut len) = (0, 0);
    for (i, w) in words.iter().enumerate() {
        let n = w.chars().count() + 1;
        if len > 0 && len + n > budget {
            out.push(start..i);
            (start, len) = (i, 0);
        }
        len += n;
        if len * 2 > budget && w.trim_end().ends_with(['.', '?', '!', '؟', '…']) {
            out.push(start..i + 1);
            (start, len) = (i + 1, 0);
        }
    }
    if start < words.len() {
        out.push(start..words.len());
    }
    out
}

/// The avatar's caption as shown (tashkeel as configured), cut into pages when the captions
/// change, and the page on screen.
#[derive(Default)]
pub struct Paged {
    texts: Vec<String>,
    pages: Vec<std::ops::Range<usize>>,
    shown: Option<std::ops::Range<usize>>,
}

/// The end of a long transcript, so the person's line stays one line or two.
fn tail(text: &str, budget: usize) -> String {
    let n = text.chars().count();
    if n <= budget {
        return text.to_string();
    }
    let cut: String = text.chars().skip(n - budget).collect();
    // From a word's start.
    let at_word = text.chars().nth(n - budget - 1).is_some_and(char::is_whitespace);
    let cut = if at_word { cut.as_str() } else { cut.split_once(' ').map_or(cut.as_str(), |(_, rest)| rest) };
    format!("… {cut}")
}

/// Whether a line's first strong letter is right-to-left (Arabic script).
pub fn is_rtl(text: &str) -> bool {
    for c in text.chars() {
        if hiwar_speech::text::is_arabic(c) && c.is_alphabetic() {
            return true;
        }
        if c.is_alphabetic() {
            return false;
        }
    }
    false
}

#[derive(Component)]
pub struct PersonLine;
#[derive(Component)]
pub struct AvatarLine;
#[derive(Component)]
pub struct AvatarWord(usize);
#[derive(Component)]
pub struct StatusText;
#[derive(Component)]
pub struct StatusDot;
#[derive(Component)]
pub struct NoticePanel;
#[derive(Component)]
pub struct NoticeText;
#[derive(Component)]
pub struct Attract;
#[derive(Component)]
pub struct OutOfService;

/// The caption font handle.
#[derive(Resource, Clone)]
pub struct CaptionFont(pub Handle<Font>);

fn font(f: &CaptionFont, vmin: f32) -> TextFont {
    TextFont { font: f.0.clone().into(), font_size: FontSize::VMin(vmin), ..default() }
}

/// Builds the overlay on `camera`.
pub fn spawn_ui(commands: &mut Commands, assets: &AssetServer, camera: Entity) -> Handle<Font> {
    let handle: Handle<Font> = assets.load(FONT);
    let f = CaptionFont(handle.clone());
    commands.insert_resource(f.clone());
    commands
        .spawn((
            Node { width: percent(100), height: percent(100), flex_direction: FlexDirection::Column, justify_content: JustifyContent::FlexEnd, ..default() },
            UiTargetCamera(camera),
        ))
        .with_children(|root| {
            // The state badge, top left.
            root.spawn((
                Node {
                    position_type: PositionType::Absolute,
                    top: vmin(2.0),
                    left: vmin(2.0),
                    padding: UiRect::axes(vmin(1.2), vmin(0.5)),
                    align_items: AlignItems::Center,
                    column_gap: vmin(1.0),
                    border_radius: BorderRadius::all(vmin(2.0)),
                    ..default()
                },
                BackgroundColor(Color::srgba(0.08, 0.1, 0.14, 0.7)),
            ))
            .with_children(|badge| {
                badge.spawn((
                    Node { width: vmin(1.6), height: vmin(1.6), border_radius: BorderRadius::all(vmin(0.8)), ..default() },
                    BackgroundColor(UPCOMING),
                    StatusDot,
                ));
                badge.spawn((Text::new(""), font(&f, 3.0), TextColor(SPOKEN), StatusText));
            });
            // Notices, top centre.
            root.spawn((
                Node {
                    position_type: PositionType::Absolute,
                    top: vmin(2.0),
                    left: percent(20),
                    width: percent(60),
                    padding: UiRect::all(vmin(1.0)),
                    justify_content: JustifyContent::Center,
                    display: Display::None,
                    border_radius: BorderRadius::all(vmin(1.0)),
                    ..default()
                },
                BackgroundColor(Color::srgba(0.55, 0.1, 0.08, 0.85)),
                NoticePanel,
            ))
            .with_child((Text::new(""), font(&f, 3.0), TextColor(SPOKEN), TextLayout::justify(Justify::Center), NoticeText));
            // Captions, bottom.
            root.spawn((
                Node { width: percent(100), flex_direction: FlexDirection::Column, padding: UiRect::axes(vw(4.0), vmin(1.5)), row_gap: vmin(0.8), ..default() },
                BackgroundColor(Color::srgba(0.05, 0.06, 0.09, 0.72)),
            ))
            .with_children(|panel| {
                panel.spawn((
                    Text::new(""),
                    font(&f, 3.6),
                    TextColor(PERSON),
                    TextLayout::justify(Justify::Start),
                    Node { width: percent(100), ..default() },
                    PersonLine,
                ));
                panel.spawn((
                    Text::new(""),
                    font(&f, AVATAR_VMIN),
                    TextColor(SPOKEN),
                    TextLayout::justify(Justify::Start),
                    Node { width: percent(100), ..default() },
                    AvatarLine,
                ));
            });
            // The attract screen (kiosk, after inactivity).
            root.spawn((overlay(), BackgroundColor(Color::srgba(0.02, 0.25, 0.32, 0.9)), Attract)).with_children(|a| {
                a.spawn((Text::new("أهلاً وسهلاً! تفضّل، تحدّث معي"), font(&f, 7.0), TextColor(SPOKEN), TextLayout::justify(Justify::Center)));
                a.spawn((Text::new("Welcome! Come and talk to me"), font(&f, 5.0), TextColor(UPCOMING), TextLayout::justify(Justify::Center)));
                a.spawn((
                    Text::new("المس الشاشة أو اضغط المسافة للتحدث · Touch the screen or press space to talk"),
                    font(&f, 3.0),
                    TextColor(UPCOMING),
                    TextLayout::justify(Justify::Center),
                ));
            });
            // Out of service: over everything, until the watchdog sees the stage work again.
            root.spawn((overlay(), BackgroundColor(Color::srgb(0.12, 0.12, 0.14)), OutOfService)).with_children(|a| {
                a.spawn((Text::new("خارج الخدمة"), font(&f, 9.0), TextColor(SPOKEN), TextLayout::justify(Justify::Center)));
                a.spawn((Text::new("Out of service"), font(&f, 6.0), TextColor(UPCOMING), TextLayout::justify(Justify::Center)));
                a.spawn((
                    Text::new("نعتذر عن الإزعاج، يرجى مراجعة أحد الموظفين · Sorry — please ask a member of staff"),
                    font(&f, 3.0),
                    TextColor(UPCOMING),
                    TextLayout::justify(Justify::Center),
                ));
            });
        });
    handle
}

fn justify_for(text: &str) -> Justify {
    if is_rtl(text) { Justify::Right } else { Justify::Left }
}

type PersonQuery<'w, 's> = Query<'w, 's, (&'static mut Text, &'static mut TextLayout), (With<PersonLine>, Without<AvatarLine>)>;
type AvatarQuery<'w, 's> = Query<'w, 's, (Entity, &'static mut TextLayout), (With<AvatarLine>, Without<PersonLine>)>;

/// Rebuilds the caption lines when their text changes or the spoken word moves to another
/// page, and highlights the word being heard.
#[allow(clippy::too_many_arguments, reason = "a bevy system")]
pub fn update_captions(
    mut commands: Commands,
    captions: Res<Captions>,
    clock: Res<StageClock>,
    caption_font: Option<Res<CaptionFont>>,
    mut person: PersonQuery,
    mut avatar: AvatarQuery,
    mut words: Query<(&AvatarWord, &mut TextColor)>,
    mut paged: Local<Paged>,
) {
    let Some(caption_font) = caption_font else { return };
    let budget = page_budget(captions.aspect);
    if captions.is_changed() {
        // The words as shown and their pages, once per change (not every frame).
        let shown = |t: &str| if captions.marks { t.to_string() } else { t.chars().filter(|c| !hiwar_speech::voice::is_tashkeel(*c)).collect() };
        paged.texts = captions.avatar.iter().map(|w| shown(&w.text)).collect();
        let refs: Vec<&str> = paged.texts.iter().map(String::as_str).collect();
        paged.pages = pages(&refs, budget);
        paged.shown = None;
        if let Ok((mut text, mut layout)) = person.single_mut() {
            text.0 = tail(&captions.person, budget * 3 / 4);
            layout.justify = justify_for(&captions.person);
        }
    }
    let pos = clock.position();
    // The page of the word being heard, or of the last one heard (the first before any).
    let heard = captions.avatar.iter().rposition(|w| w.start <= pos).unwrap_or(0);
    let current = paged.pages.iter().find(|p| p.contains(&heard)).cloned().unwrap_or(0..0);
    if paged.shown.as_ref() != Some(&current) {
        if let Ok((line, mut layout)) = avatar.single_mut() {
            layout.justify = justify_for(&paged.texts.join(" "));
            commands.entity(line).despawn_related::<Children>();
            let last = current.end;
            let texts = &paged.texts;
            commands.entity(line).with_children(|l| {
                for i in current.clone() {
                    let text = if i + 1 < last { format!("{} ", texts[i]) } else { texts[i].clone() };
                    l.spawn((TextSpan::new(text), font(&caption_font, AVATAR_VMIN), TextColor(UPCOMING), AvatarWord(i)));
                }
            });
        }
        paged.shown = Some(current);
        return;
    }
    for (word, mut color) in &mut words {
        let Some(w) = captions.avatar.get(word.0) else { continue };
        let c = if pos >= w.start && pos < w.end {
            CURRENT
        } else if pos >= w.end {
            SPOKEN
        } else {
            UPCOMING
        };
        if color.0 != c {
            color.0 = c;
        }
    }
}

/// The state badge, the notices, the attract screen and the out-of-service screen.
#[allow(clippy::type_complexity, reason = "bevy queries over disjoint UI panels")]
pub fn update_status(
    state: Res<StageState>,
    mut text: Query<&mut Text, (With<StatusText>, Without<NoticeText>)>,
    mut dot: Query<&mut BackgroundColor, With<StatusDot>>,
    mut notice: Query<&mut Node, (With<NoticePanel>, Without<Attract>, Without<OutOfService>)>,
    mut notice_text: Query<&mut Text, (With<NoticeText>, Without<StatusText>)>,
    mut attract: Query<&mut Node, (With<Attract>, Without<NoticePanel>, Without<OutOfService>)>,
    mut out_of_service: Query<&mut Node, (With<OutOfService>, Without<NoticePanel>, Without<Attract>)>,
) {
    if !state.is_changed() {
        return;
    }
    let (label, color) = match state.activity {
        Activity::Idle => ("جاهز · Ready", UPCOMING),
        Activity::Listening => ("أستمع · Listening", Color::srgb(0.3, 0.85, 0.45)),
        Activity::Thinking => ("أفكّر · Thinking", Color::srgb(1.0, 0.8, 0.25)),
        Activity::Speaking => ("أتحدّث · Speaking", Color::srgb(0.35, 0.65, 1.0)),
    };
    if let Ok(mut t) = text.single_mut() {
        t.0 = label.to_string();
    }
    if let Ok(mut d) = dot.single_mut() {
        d.0 = color;
    }
    let lines: Vec<String> = state
        .notices
        .iter()
        .map(|n| {
            let (ar, en) = n.text();
            format!("{ar}\n{en}")
        })
        .collect();
    if let Ok(mut node) = notice.single_mut() {
        node.display = if lines.is_empty() { Display::None } else { Display::Flex };
    }
    if let Ok(mut t) = notice_text.single_mut() {
        t.0 = lines.join("\n");
    }
    if let Ok(mut node) = attract.single_mut() {
        node.display = if state.attract && !state.out_of_service { Display::Flex } else { Display::None };
    }
    if let Ok(mut node) = out_of_service.single_mut() {
        node.display = if state.out_of_service { Display::Flex } else { Display::None };
    }
}

/// A full-window, centred column, hidden until shown (the attract screen, out of service).
fn overlay() -> Node {
    Node {
        position_type: PositionType::Absolute,
        width: percent(100),
        height: percent(100),
        flex_direction: FlexDirection::Column,
        justify_content: JustifyContent::Center,
        align_items: AlignItems::Center,
        row_gap: vmin(2.0),
        display: Display::None,
        ..default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_answers_are_paged_so_the_panel_stays_two_lines() {
        let words: Vec<String> = (0..60).map(|i| if i % 9 == 8 { format!("word{i}.") } else { format!("w{i}") }).collect();
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        for aspect in [16.0 / 9.0, 9.0 / 16.0] {
            let budget = page_budget(aspect);
            let p = pages(&refs, budget);
            assert_eq!(p.first().map(|r| r.start), Some(0));
            assert_eq!(p.last().map(|r| r.end), Some(60));
            assert!(p.windows(2).all(|w| w[0].end == w[1].start && !w[0].is_empty()), "{p:?}");
            for r in &p {
                let len: usize = refs[r.clone()].iter().map(|w| w.chars().count() + 1).sum();
                assert!(len <= budget || r.len() == 1, "page {r:?} of {len} chars over {budget}");
            }
        }
        assert!(page_budget(9.0 / 16.0) < page_budget(16.0 / 9.0));
        assert_eq!(pages(&["a-very-long-word"], 4), vec![0..1]);
        assert!(pages(&[], 50).is_empty());
        assert_eq!(tail("one two three four", 100), "one two three four");
        assert_eq!(tail("one two three four", 10), "… three four");
    }

    #[test]
    fn direction_from_the_first_strong_letter() {
        assert!(is_rtl("مرحبا بكم"));
        assert!(is_rtl("«أبغى» أجدد الـ Emirates ID حقي"));
        assert!(!is_rtl("Emirates ID تجديد"));
        assert!(!is_rtl("123 ..."));
    }
}
