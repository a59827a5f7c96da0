/**
 * The extension's one UI kit, shared by the side panels and the console: one component per
 * file, styled by style/base.css (classes `jp-BackendAI-*`) with JupyterLab's theme variables.
 */
export { AdminList } from './AdminList';
export { BarChart } from './BarChart';
export { Button, ButtonKind } from './Button';
export { CheckField } from './CheckField';
export { CopyText } from './CopyText';
export { DataTable, IColumn } from './DataTable';
export { downloadText } from './downloadText';
export { EditDelete } from './EditDelete';
export { ErrorMessage } from './ErrorMessage';
export { Field } from './Field';
export { FormDialog } from './FormDialog';
export { Gauge } from './Gauge';
export { IconButton } from './IconButton';
export { uid, useId } from './ids';
export { Loading } from './Loading';
export { Message } from './Message';
export { Meter } from './Meter';
export { MultiCheck } from './MultiCheck';
export { NumberField } from './NumberField';
export { Options } from './Options';
export { PanelHead } from './PanelHead';
export { PasswordRules } from './PasswordRules';
export { SecretResult } from './SecretResult';
export { SectionHeader } from './SectionHeader';
export { SelectField } from './SelectField';
export { confirm, showError, showForm, showInfo, showModal } from './showModal';
export { SlotInputs } from './SlotInputs';
export { StatusMessage } from './StatusMessage';
export { TabPages } from './TabPages';
export { ITab, Tabs } from './Tabs';
export { ITextFieldProps, TextField } from './TextField';
export { IActions, useActions } from './useActions';
export { ILoaded, useLoad } from './useLoad';
export { IShow, useShow } from './useShow';
export { WhoPanel } from './WhoPanel';
